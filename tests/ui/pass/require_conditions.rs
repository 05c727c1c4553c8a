//! `#[require(...)]`: one predicate, several, a path, several attributes, any order, with
//! scopes and roles.
#![deny(warnings)]

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::routing::get;
use tokengate::{Auth, Parts, TokenGate, accepts_token, require, require_role, require_scope};

async fn is_self(auth: &Auth, parts: &mut Parts) -> bool {
    match Path::<String>::from_request_parts(parts, &()).await {
        Ok(Path(id)) => auth.user_id.as_deref() == Some(id.as_str()),
        Err(_) => false,
    }
}

mod checks {
    use tokengate::{Auth, Parts};

    pub async fn is_member(auth: &Auth, _parts: &mut Parts) -> bool {
        auth.org_id.is_some()
    }

    /// The full path of the request type works as well as `tokengate::Parts`.
    pub async fn is_get(_auth: &Auth, parts: &mut http::request::Parts) -> bool {
        parts.method == http::Method::GET
    }
}

// Without `#[accepts_token]`: session tokens only.
#[require(is_self)]
async fn own_profile(Path(id): Path<String>) -> String {
    id
}

// Several predicates, paths, several attributes, any order, with other requirements.
#[require(checks::is_member, crate::checks::is_get)]
#[require_scope(api_key: "reports:read")]
#[accepts_token(session_token, api_key)]
#[require(is_self)]
#[require_role(any("org:admin", "org:billing"))]
async fn reports(auth: Auth) -> String {
    format!("{:?}", auth.user_id)
}

#[tokengate::require(is_self,)]
#[tokengate::accepts_token(any)]
pub async fn trailing_comma_and_qualified() {}

fn main() {
    let _router: Router<TokenGate> = Router::new()
        .route("/users/{id}", get(own_profile))
        .route("/reports/{id}", get(reports))
        .route("/any/{id}", get(trailing_comma_and_qualified));
}
