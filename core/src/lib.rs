//! The vocabulary tokengate's attributes and its runtime share, written once: the token types
//! and the grammar of scopes, roles, permissions, features, plans, `acr` values and
//! reverification requirements.
//!
//! ```
//! use tokengate_core::grammar::ValueKind;
//! use tokengate_core::{TokenType, TokenTypes};
//!
//! const MACHINES: TokenTypes = TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken);
//! assert_eq!(TokenType::from_name("api_key"), Some(TokenType::ApiKey));
//! assert_eq!(MACHINES.to_string(), "api_key, m2m_token");
//! assert!(ValueKind::Role.validate("org:admin").is_ok());
//! assert!(ValueKind::Scope.validate("read users").is_err());
//! ```
//!
//! `tokengate-macros` applies these rules at compile time, `tokengate-runtime` to policies
//! built at run time; most users depend on the `tokengate` facade instead of this crate.
//! The crate has no dependency; the `serde` feature adds `serde::Serialize` for the token
//! types.

pub mod grammar;
pub mod rate;
pub mod reverification;
#[cfg(feature = "serde")]
mod serialize;
pub mod token;

pub use token::{TokenType, TokenTypes};
