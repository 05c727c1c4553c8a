//! OpenAPI frameworks: the security requirements of each operation come from the policies,
//! not from hand-written annotations.
//!
//! - [`utoipa`] (feature `utoipa`): [`TokengateSecurity`](utoipa::TokengateSecurity), a
//!   `utoipa::Modify` that stamps the four bearer schemes and every route's requirements onto
//!   the document utoipa builds, from the router's [route-policy report](crate::report).
//! - [`aide`] (feature `aide`): the guard is an `aide::OperationInput`, so aide documents each
//!   guarded operation's security with no extra code; [`security_schemes`](aide::security_schemes)
//!   adds the schemes to the document.
//!
//! Both write what `--format openapi` writes (OpenAPI 3.1): per operation one requirement
//! object per accepted token type and per choice of its any-of scopes, `{}` as a last
//! alternative on an optional route, and `security: []` on a `#[public]` one (with aide,
//! written by the [`Public`](crate::Public) marker `#[public]` adds to the handler).

#[cfg(feature = "aide")]
pub mod aide;
#[cfg(feature = "utoipa")]
pub mod utoipa;
