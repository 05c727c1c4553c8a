//! utoipa documents the operations; tokengate stamps their security from the policies.
//!
//! ```sh
//! cargo run --example openapi_utoipa --features utoipa   # prints the OpenAPI 3.1 document
//! ```
//!
//! The handlers carry their tokengate attributes and utoipa's `#[utoipa::path]` (below them);
//! nobody writes a `security(...)` by hand: `TokengateSecurity` reads the route-policy report.

use axum::Json;
use serde_json::{Value, json};
use tokengate::openapi::utoipa::TokengateSecurity;
use tokengate::routing::{Router, get, post};
use tokengate::{Auth, TokenGate, accepts_token, public, require_scope};
use utoipa::{Modify as _, OpenApi};

/// The verified caller.
#[accepts_token(any)]
#[utoipa::path(get, path = "/api/me", responses((status = 200, description = "the caller")))]
pub(crate) async fn me(auth: Auth) -> Json<Auth> {
    Json(auth)
}

/// A feed, personalised for signed-in callers.
#[accepts_token(optional, session_token, api_key)]
#[utoipa::path(get, path = "/api/feed", responses((status = 200, description = "the feed")))]
pub(crate) async fn feed(auth: Option<Auth>) -> Json<Value> {
    Json(json!({ "personalized": auth.is_some() }))
}

/// Creates a report: sessions, or API keys with `reports:write` or `admin`.
#[accepts_token(session_token, api_key)]
#[require_scope(api_key: any("reports:write", "admin"))]
#[utoipa::path(post, path = "/api/reports", responses((status = 201, description = "created")))]
pub(crate) async fn create_report() -> &'static str {
    "created"
}

/// Liveness.
#[public]
#[utoipa::path(get, path = "/health", responses((status = 200, description = "ok")))]
pub(crate) async fn health() -> &'static str {
    "ok"
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tokengate example", version = "1"),
    paths(me, feed, create_report, health)
)]
struct ApiDoc;

/// The routes (what is served, and what the report reads).
pub(crate) fn routes() -> Router<TokenGate> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/feed", get(feed))
        .route("/api/reports", post(create_report))
        .route("/health", get(health))
}

/// utoipa's document with every operation's security from the policies.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    TokengateSecurity::new(routes().report()).modify(&mut doc);
    doc
}

fn main() -> Result<(), serde_json::Error> {
    println!("{}", serde_json::to_string_pretty(&document())?);
    Ok(())
}
