//! The shortest complete tokengate program: one route for API keys, one for signed-in users.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! It prints an API key and a session token, then serves on 127.0.0.1:3000 (or the address
//! after `--addr`; `tests/quickstart.rs` runs it on a free port). The demo
//! credentials come from `tokengate::testing` (a generated key pair and an in-memory key
//! store); in production, build the `TokenGate` from your issuer's JWKS and your key store
//! (README, "Configuring verifiers").

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use tokengate::accepts_token;
use tokengate::caller::{ApiKeyCaller, SessionCaller};
use tokengate::testing::TestGate;

/// API keys only; the caller is typed: `id`, `subject` and `scopes` need no unwrapping.
#[accepts_token(api_key)]
async fn reports(key: ApiKeyCaller) -> Json<Value> {
    Json(json!({ "key": key.id, "owner": key.subject, "scopes": key.scopes }))
}

/// Signed-in users (session tokens, Clerk's default).
#[accepts_token(session_token)]
async fn profile(session: SessionCaller) -> Json<Value> {
    Json(json!({ "userId": session.user_id, "org": session.org }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = TestGate::new()?;
    let key = demo.keys.api_key("user_123", ["reports:read"]).await?;
    let session = demo.issuer.session("user_123").org("org_1", "org:admin").sign()?;

    let app: Router = Router::new()
        .route("/reports", get(reports))
        .route("/profile", get(profile))
        .with_state(demo.gate.clone());

    let addr = std::env::args().skip_while(|a| a != "--addr").nth(1);
    let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:3000")).await?;
    let addr = listener.local_addr()?;
    println!("API key:       {}", key.secret);
    println!("session token: {session}");
    println!("curl -H 'Authorization: Bearer {}' http://{addr}/reports", key.secret);
    println!("curl -H 'Authorization: Bearer {session}' http://{addr}/profile");
    axum::serve(listener, app).await?;
    Ok(())
}
