//! [`Public`]: the marker `#[public]` puts first in an open handler's arguments.
//!
//! It extracts nothing and never fails: a `#[public]` route verifies no token. It exists so
//! that tools reading a handler's arguments see that the route is open on purpose — with
//! aide's `ApiRouter`, it writes the operation's `security: []` (see
//! [`openapi::aide`](crate::openapi)), as the guard writes a guarded operation's requirements.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::request::Parts;

/// An open route's marker: `#[public]` adds it as the handler's first parameter.
///
/// Unit tests calling a public handler directly pass it first: `health(Public).await`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Public;

impl<S: Send + Sync> FromRequestParts<S> for Public {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Public, Infallible> {
        Ok(Public)
    }
}
