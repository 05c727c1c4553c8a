//! Every form of `#[require_scope]`, in any order relative to `#[accepts_token]`.
#![deny(warnings)]

use axum::routing::{get, post};
use axum::{Json, Router};
use tokengate::{TokenGate, accepts_token, require_scope};

#[accepts_token(api_key)]
#[require_scope("read:users", "write:users")]
async fn all_of() {}

#[accepts_token(api_key)]
#[require_scope(all("read:users", "write:users"))]
async fn all_explicit() {}

#[accepts_token(api_key, m2m_token)]
#[require_scope(any("read:users", "admin"))]
async fn any_of() {}

// The seed's POST route: sessions pass, API keys need `write:users`.
#[accepts_token(session_token, api_key)]
#[require_scope(api_key: "write:users")]
async fn create_user(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(body)
}

#[accepts_token(session_token, api_key, m2m_token)]
#[require_scope(api_key | m2m_token: any("write:users", "admin"))]
async fn limited_to_several() {}

// Several attributes combine with AND.
#[accepts_token(oauth_token, api_key)]
#[require_scope("read:users")]
#[require_scope(any("write:users", "admin"))]
#[require_scope(api_key: "keys:extra")]
async fn and_together() {}

// Order does not matter: here `#[require_scope]` expands first and collects the rest.
#[require_scope("read:users")]
#[tokengate::accepts_token(m2m_token)]
async fn scope_first() {}

#[accepts_token(any)]
#[require_scope(oauth_token | api_key | m2m_token: "read:users")]
async fn any_with_machines_limit() {}

fn main() {
    let _router: Router<TokenGate> = Router::new()
        .route("/all", get(all_of))
        .route("/all-explicit", get(all_explicit))
        .route("/any", get(any_of))
        .route("/users", post(create_user))
        .route("/several", get(limited_to_several))
        .route("/and", get(and_together))
        .route("/scope-first", get(scope_first))
        .route("/any-machines", get(any_with_machines_limit));
}
