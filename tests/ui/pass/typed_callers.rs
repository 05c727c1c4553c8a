//! Typed callers: a view on a route of one type, a `Caller` narrowed to the accepted types
//! (its `match` is exhaustive with an arm per accepted type), `Option`s on optional routes,
//! and `Auth` as before.
#![deny(warnings)]

use axum::Router;
use axum::routing::get;
use tokengate::caller::{ApiKeyCaller, M2mCaller, OAuthCaller, SessionCaller};
use tokengate::{Auth, Caller, TokenGate, accepts_token};

#[accepts_token(api_key)]
async fn key(caller: ApiKeyCaller) -> String {
    format!("{} {}", caller.id, caller.subject)
}

#[tokengate::require_role("org:admin")]
async fn session(caller: SessionCaller) -> String {
    caller.org.map(|o| o.id).unwrap_or(caller.user_id)
}

#[accepts_token(oauth_token)]
async fn oauth(caller: OAuthCaller) -> String {
    caller.subject
}

#[accepts_token(m2m_token)]
async fn machine(caller: tokengate::M2mCaller) -> String {
    let M2mCaller { subject, .. } = caller;
    subject
}

#[accepts_token(session_token, api_key)]
async fn either(caller: Caller) -> String {
    match caller {
        Caller::Session(s) => s.user_id,
        Caller::ApiKey(k) => k.id,
    }
}

#[accepts_token(any)]
async fn every_type(caller: tokengate::Caller, auth: Auth) -> String {
    let who = match caller {
        Caller::Session(s) => s.user_id,
        Caller::OAuth(o) => o.subject,
        Caller::ApiKey(k) => k.subject,
        Caller::M2m(m) => m.subject,
    };
    format!("{who} {:?}", auth.token_type)
}

#[accepts_token(optional, session_token, api_key)]
async fn feed(caller: Option<Caller>) -> String {
    match caller {
        None => "anonymous".to_owned(),
        Some(Caller::Session(s)) => s.user_id,
        Some(Caller::ApiKey(k)) => k.subject,
    }
}

#[accepts_token(optional, session_token)]
async fn optional_view(caller: Option<SessionCaller>, auth: Option<Auth>) -> String {
    format!("{:?} {:?}", caller.map(|c| c.user_id), auth.map(|a| a.token_type))
}

fn main() {
    let _app: Router<TokenGate> = Router::new()
        .route("/key", get(key))
        .route("/session", get(session))
        .route("/oauth", get(oauth))
        .route("/machine", get(machine))
        .route("/either", get(either))
        .route("/any", get(every_type))
        .route("/feed", get(feed))
        .route("/optional", get(optional_view));
}
