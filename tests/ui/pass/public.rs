//! `#[public]` registers the handler as intentionally open; it gains only the `Public` marker.
#![deny(warnings)]

use axum::Router;
use axum::routing::get;
use tokengate::public;

/// Health check.
#[public]
pub async fn health() -> &'static str {
    "ok"
}

#[tokengate::public]
async fn version() -> &'static str {
    "1"
}

fn main() {
    // A public handler needs no TokenGate in the state.
    let _router: Router = Router::new().route("/health", get(health)).route("/version", get(version));
}
