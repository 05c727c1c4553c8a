//! `serde::Serialize` for the token types (the `serde` feature): a type as its name, a set as
//! the list of its types' names.

use crate::token::{TokenType, TokenTypes};

impl serde::Serialize for TokenType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl serde::Serialize for TokenTypes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}
