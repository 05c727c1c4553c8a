//! aide documents the operations; the guard the attributes add documents their security.
//!
//! ```sh
//! cargo run --example openapi_aide --features aide   # prints the OpenAPI 3.1 document
//! ```
//!
//! The handlers carry only their tokengate attributes: with aide's `ApiRouter`, the guard is
//! an `OperationInput` and writes each operation's `security`; `security_schemes` adds the
//! four bearer schemes to the document.

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use aide::openapi::{Info, OpenApi};
use tokengate::openapi::aide::security_schemes;
use tokengate::{Auth, TokenGate, accepts_token, public, require_scope};

/// The verified caller's user.
#[accepts_token(any)]
pub(crate) async fn me(auth: Auth) -> String {
    auth.user_id.as_deref().unwrap_or_default().to_owned()
}

/// A feed, personalised for signed-in callers.
#[accepts_token(optional, session_token, api_key)]
pub(crate) async fn feed(auth: Option<Auth>) -> String {
    format!("personalized: {}", auth.is_some())
}

/// Creates a report: sessions, or API keys with `reports:write` or `admin`.
#[accepts_token(session_token, api_key)]
#[require_scope(api_key: any("reports:write", "admin"))]
pub(crate) async fn create_report() -> &'static str {
    "created"
}

/// Liveness.
#[public]
pub(crate) async fn health() -> &'static str {
    "ok"
}

/// The routes, documented by aide as they are added; and the finished document.
pub(crate) fn app() -> (axum::Router<TokenGate>, OpenApi) {
    let mut api = OpenApi {
        info: Info {
            title: "tokengate example".to_owned(),
            version: "1".to_owned(),
            ..Info::default()
        },
        ..OpenApi::default()
    };
    let router = ApiRouter::new()
        .api_route("/api/me", get(me))
        .api_route("/api/feed", get(feed))
        .api_route("/api/reports", post(create_report))
        .api_route("/health", get(health))
        .finish_api_with(&mut api, security_schemes);
    (router, api)
}

fn main() -> Result<(), serde_json::Error> {
    let (_router, api) = app();
    println!("{}", serde_json::to_string_pretty(&api)?);
    Ok(())
}
