//! tokengate: declare on each axum handler which bearer tokens it accepts and what they must
//! carry; tokengate enforces it, checks it at compile time, and reports it.
//!
//! See the README for a tour. This crate re-exports [`tokengate_runtime`] and, with the
//! default `macros` feature, the attributes of `tokengate-macros`.

pub use tokengate_runtime::*;

#[cfg(feature = "macros")]
pub use tokengate_macros::*;
