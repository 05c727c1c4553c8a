//! What survives the attributes: name, visibility, docs, other attributes (before or after),
//! generics, `impl Trait` returns, `cfg`, and calling the handler directly in a unit test.
#![deny(warnings, missing_docs)]

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, debug_handler};
use tokengate::{Auth, AuthInfo, Guard, TokenGate, TokenType, accepts_token, require_scope};

/// The router state.
#[derive(Clone)]
pub struct AppState {
    gate: TokenGate,
}

impl axum::extract::FromRef<AppState> for TokenGate {
    fn from_ref(state: &AppState) -> TokenGate {
        state.gate.clone()
    }
}

/// Documented, instrumented, `impl Trait` return.
#[tracing::instrument(skip_all)]
#[accepts_token(api_key)]
#[require_scope("read:users")]
pub async fn list_users(State(_state): State<AppState>) -> impl IntoResponse {
    "users"
}

/// `#[debug_handler]` after the tokengate attributes checks the guarded signature.
#[accepts_token(api_key)]
#[debug_handler(state = AppState)]
pub async fn debugged(auth: Auth) -> String {
    auth.token_type.to_string()
}

/// Other attributes after the tokengate ones, and a body extractor after the guard.
#[accepts_token(api_key)]
#[require_scope("write:users")]
#[allow(clippy::unused_async)]
#[debug_handler(state = AppState)]
pub async fn debugged_body(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(body)
}

/// Generic handlers keep their generics.
#[accepts_token(m2m_token)]
pub async fn generic<T: Default + std::fmt::Display + Send + 'static>() -> String {
    T::default().to_string()
}

/// Compiled out: the generated items follow the `cfg` (no error about a missing `gated`).
#[accepts_token(api_key)]
#[cfg(any())]
pub async fn gated() {}

/// `#[tracing::instrument]` after the tokengate attributes sees the guard as `_`.
#[accepts_token(api_key)]
#[tracing::instrument]
pub async fn instrumented_after(Json(body): Json<serde_json::Value>) -> String {
    body.to_string()
}

mod nested {
    use tokengate::accepts_token;

    /// Visibility is kept: reachable from the parent module.
    #[accepts_token(session_token)]
    pub(crate) async fn whoami(auth: tokengate::Auth) -> String {
        format!("{:?}", auth.session_id)
    }
}

fn main() {
    let gate = TokenGate::builder().build().unwrap();
    let _router: Router = Router::new()
        .route("/users", get(list_users))
        .route("/debugged", get(debugged))
        .route("/debugged-body", get(debugged_body).post(debugged_body))
        .route("/generic", get(generic::<u8>))
        .route("/instrumented", post(instrumented_after))
        .route("/whoami", get(nested::whoami))
        .with_state(AppState { gate });

    // A unit test calls the handler directly; the guard's policy type is inferred.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let out = rt.block_on(debugged(Guard::for_tests(), Auth::new(AuthInfo::new(TokenType::ApiKey))));
    assert_eq!(out, "api_key");
}
