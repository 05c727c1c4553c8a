//! Every form of `#[accepts_token]`, routed with an unchanged `Router::route`.

#![deny(warnings)]

use axum::Router;
use axum::routing::get;
use tokengate::{Auth, TokenGate, accepts_token};

#[accepts_token(api_key)]
async fn one() -> &'static str {
    "one"
}

#[accepts_token(session_token, oauth_token, api_key)]
async fn several(auth: Auth) -> String {
    format!("{:?}", auth.token_type)
}

#[accepts_token(any)]
async fn any() {}

#[accepts_token(m2m_token,)]
pub async fn trailing_comma() {}

#[tokengate::accepts_token(api_key)]
pub(crate) async fn by_path() {}

fn main() {
    let _router: Router<TokenGate> = Router::new()
        .route("/one", get(one))
        .route("/several", get(several))
        .route("/any", get(any))
        .route("/trailing", get(trailing_comma))
        .route("/path", get(by_path));
}
