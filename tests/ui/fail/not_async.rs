use axum::Router;
use axum::routing::get;
use tokengate::{TokenGate, accepts_token, public};

#[accepts_token(api_key)]
fn not_async() -> &'static str {
    "sync"
}

#[public]
fn public_not_async() {}

fn main() {
    let _router: Router<TokenGate> = Router::new().route("/a", get(|| async { not_async() }));
    public_not_async();
}
