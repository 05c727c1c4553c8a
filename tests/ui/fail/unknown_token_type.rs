use axum::Router;
use axum::routing::get;
use tokengate::{TokenGate, accepts_token};

#[accepts_token(api_kye)]
async fn typo() {}

#[accepts_token(session, machine_token, jwt_thing)]
async fn several_unknown() {}

fn main() {
    // No cascade: the handlers still exist and route.
    let _router: Router<TokenGate> = Router::new().route("/a", get(typo)).route("/b", get(several_unknown));
}
