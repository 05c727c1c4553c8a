//! Organization roles and permissions through a real router: RS256 session tokens shaped like
//! Clerk's v1 and v2 claims (with and without the organization, role and permissions),
//! verified by `JwtVerifier` with a key generated for the test; the attributes and `policy!`
//! in a group layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;
use support::{Reply, V2Org, session_verifier, token, v1, v2};
use tokengate::verifier::StaticVerifier;
use tokengate::{
    Auth, AuthInfo, PolicyLayer, TokenGate, TokenType, accepts_token, policy, require_permission, require_role,
    require_scope,
};

#[require_role("org:admin")]
async fn admin_only(auth: Auth) -> String {
    auth.org_role.as_deref().unwrap_or_default().to_owned()
}

#[require_role(any("org:admin", "org:billing"))]
async fn admin_or_billing() -> &'static str {
    "ok"
}

#[require_permission("org:invoices:create", "org:invoices:read")]
async fn invoices_all() -> &'static str {
    "ok"
}

#[require_permission(any("org:invoices:delete", "org:reports:read"))]
async fn invoices_any() -> &'static str {
    "ok"
}

/// Roles apply to sessions only: with no scope for API keys, any valid API key passes.
#[accepts_token(session_token, api_key)]
#[require_role("org:admin")]
async fn mixed_without_scope(auth: Auth) -> String {
    auth.token_type.to_string()
}

/// The documented fix: API keys get a scope of their own.
#[accepts_token(session_token, api_key)]
#[require_role("org:admin")]
#[require_scope(api_key: "admin")]
async fn mixed_with_scope(auth: Auth) -> String {
    auth.token_type.to_string()
}

const AK_PLAIN: &str = "ak_plain_0123456789";
const AK_ADMIN: &str = "ak_admin_0123456789";

fn gate() -> TokenGate {
    let mut plain = AuthInfo::new(TokenType::ApiKey);
    plain.subject = Some("user_key".into());
    let mut admin = plain.clone();
    admin.scopes = vec!["admin".into()];
    let keys = StaticVerifier::new()
        .with_token(AK_PLAIN, plain)
        .with_token(AK_ADMIN, admin);
    TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::new(session_verifier()))
        .verifier(TokenType::ApiKey, Arc::new(keys))
        .build()
        .unwrap()
}

fn router() -> Router {
    let gate = gate();
    let group = Router::new()
        .route("/group/reports", get(|| async { "reports" }))
        .layer(PolicyLayer::new(
            gate.clone(),
            policy!(require_role("org:admin"), require_permission(any("org:reports:read"))),
        ));
    let mixed_group = Router::new()
        .route(
            "/group/invoices",
            get(|auth: Auth| async move { auth.token_type.to_string() }),
        )
        .layer(PolicyLayer::new(
            gate.clone(),
            policy!(
                accepts_token(session_token, api_key),
                require_permission("org:invoices:create"),
                require_scope(api_key: "admin")
            ),
        ));
    Router::new()
        .route("/admin", get(admin_only))
        .route("/admin-or-billing", get(admin_or_billing))
        .route("/invoices/all", get(invoices_all))
        .route("/invoices/any", get(invoices_any))
        .route("/mixed/unscoped", get(mixed_without_scope))
        .route("/mixed/scoped", get(mixed_with_scope))
        .with_state(gate)
        .merge(group)
        .merge(mixed_group)
}

/// The session tokens of the tests, each a real RS256 token.
struct Tokens {
    /// v2: admin; `invoices` read+create, `reports` read.
    v2_admin: String,
    /// v2: billing; `invoices` read only.
    v2_billing: String,
    /// v2: member, the organization without `per`/`fpm` (no permissions).
    v2_member: String,
    /// v2: signed in, no active organization.
    v2_no_org: String,
    /// v1: `org:admin` with `org:invoices:create`, `org:invoices:read`.
    v1_admin: String,
    /// v1: `org:member`, no permissions.
    v1_member: String,
    /// v1: no organization.
    v1_no_org: String,
}

fn tokens() -> Tokens {
    Tokens {
        v2_admin: token(&v2(
            "user_admin",
            Some(V2Org {
                rol: "admin",
                fea: "o:invoices,o:reports,u:profile",
                per_fpm: Some(("read,create", "3,1")),
            }),
        )),
        v2_billing: token(&v2(
            "user_billing",
            Some(V2Org {
                rol: "billing",
                fea: "o:invoices",
                per_fpm: Some(("read,create", "1")),
            }),
        )),
        v2_member: token(&v2(
            "user_member",
            Some(V2Org {
                rol: "member",
                fea: "o:invoices",
                per_fpm: None,
            }),
        )),
        v2_no_org: token(&v2("user_solo", None)),
        v1_admin: token(&v1(
            "user_admin1",
            Some(("org:admin", &["org:invoices:create", "org:invoices:read"])),
        )),
        v1_member: token(&v1("user_member1", Some(("org:member", &[])))),
        v1_no_org: token(&v1("user_solo1", None)),
    }
}

async fn call(router: &Router, uri: &str, token: &str) -> Reply {
    support::get(router, uri, Some(token)).await
}

fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.reason(), reason, "{}", reply.text);
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
}

#[tokio::test]
async fn require_role_reads_v1_and_v2_claims() {
    let (r, t) = (router(), tokens());
    let ok = call(&r, "/admin", &t.v2_admin).await;
    assert_eq!((ok.status, ok.text.as_str()), (StatusCode::OK, "org:admin"));
    let ok = call(&r, "/admin", &t.v1_admin).await;
    assert_eq!((ok.status, ok.text.as_str()), (StatusCode::OK, "org:admin"));

    for member in [&t.v2_billing, &t.v2_member, &t.v1_member] {
        let refused = call(&r, "/admin", member).await;
        assert_refused(&refused, "missing-role");
        assert_eq!(refused.json()["missing_roles"], json!(["org:admin"]));
        assert!(
            refused.json()["message"].as_str().unwrap().contains("`org:admin`"),
            "{}",
            refused.text
        );
    }
}

#[tokio::test]
async fn any_of_roles_needs_one() {
    let (r, t) = (router(), tokens());
    assert_eq!(call(&r, "/admin-or-billing", &t.v2_admin).await.status, StatusCode::OK);
    assert_eq!(
        call(&r, "/admin-or-billing", &t.v2_billing).await.status,
        StatusCode::OK
    );
    assert_eq!(call(&r, "/admin-or-billing", &t.v1_admin).await.status, StatusCode::OK);
    assert_refused(&call(&r, "/admin-or-billing", &t.v2_member).await, "missing-role");
    assert_refused(&call(&r, "/admin-or-billing", &t.v1_member).await, "missing-role");
}

#[tokio::test]
async fn all_of_permissions_names_what_is_missing() {
    let (r, t) = (router(), tokens());
    // v2: `fpm` 3 over `per` read,create grants both on invoices; v1 lists them.
    assert_eq!(call(&r, "/invoices/all", &t.v2_admin).await.status, StatusCode::OK);
    assert_eq!(call(&r, "/invoices/all", &t.v1_admin).await.status, StatusCode::OK);
    // v2 billing: `fpm` 1 grants `read` only.
    let refused = call(&r, "/invoices/all", &t.v2_billing).await;
    assert_refused(&refused, "missing-permission");
    assert_eq!(refused.json()["missing_permissions"], json!(["org:invoices:create"]));
    // An organization without `per`/`fpm`, or with an empty list: nothing is granted.
    for none in [&t.v2_member, &t.v1_member] {
        let refused = call(&r, "/invoices/all", none).await;
        assert_refused(&refused, "missing-permission");
        assert_eq!(
            refused.json()["missing_permissions"],
            json!(["org:invoices:create", "org:invoices:read"])
        );
    }
}

#[tokio::test]
async fn any_of_permissions_needs_one() {
    let (r, t) = (router(), tokens());
    // `reports` has mask 1: `org:reports:read`.
    assert_eq!(call(&r, "/invoices/any", &t.v2_admin).await.status, StatusCode::OK);
    assert_refused(&call(&r, "/invoices/any", &t.v2_billing).await, "missing-permission");
    assert_refused(&call(&r, "/invoices/any", &t.v1_admin).await, "missing-permission");
}

#[tokio::test]
async fn no_active_organization_is_a_clear_refusal() {
    let (r, t) = (router(), tokens());
    for (uri, noun) in [
        ("/admin", "role"),
        ("/admin-or-billing", "role"),
        ("/invoices/all", "permission"),
        ("/invoices/any", "permission"),
        ("/group/reports", "role"),
    ] {
        for solo in [&t.v2_no_org, &t.v1_no_org] {
            let refused = call(&r, uri, solo).await;
            assert_refused(&refused, "no-active-organization");
            let message = refused.json()["message"].as_str().unwrap().to_owned();
            assert!(
                message.contains(noun) && message.contains("active organization"),
                "{uri}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn machine_tokens_are_governed_by_scopes_not_roles() {
    let (r, t) = (router(), tokens());
    // Roles say nothing about API keys: without a scope, any valid key passes (documented).
    let key = call(&r, "/mixed/unscoped", AK_PLAIN).await;
    assert_eq!((key.status, key.text.as_str()), (StatusCode::OK, "api_key"));
    assert_refused(&call(&r, "/mixed/unscoped", &t.v2_member).await, "missing-role");
    // With `#[require_scope(api_key: "admin")]`, keys need the scope.
    assert_refused(&call(&r, "/mixed/scoped", AK_PLAIN).await, "insufficient-scope");
    assert_eq!(call(&r, "/mixed/scoped", AK_ADMIN).await.status, StatusCode::OK);
    let session = call(&r, "/mixed/scoped", &t.v2_admin).await;
    assert_eq!(
        (session.status, session.text.as_str()),
        (StatusCode::OK, "session_token")
    );
    assert_refused(&call(&r, "/mixed/scoped", &t.v1_member).await, "missing-role");
    // An invalid key is still a 401.
    assert_eq!(
        call(&r, "/mixed/unscoped", "ak_unknown_0123456789").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn policy_macro_roles_and_permissions_in_a_group_layer() {
    let (r, t) = (router(), tokens());
    // `require_role("org:admin")` and `require_permission(any("org:reports:read"))`.
    assert_eq!(call(&r, "/group/reports", &t.v2_admin).await.status, StatusCode::OK);
    assert_refused(&call(&r, "/group/reports", &t.v2_billing).await, "missing-role");
    assert_refused(&call(&r, "/group/reports", &t.v1_admin).await, "missing-permission");
    // The layer's default accepts sessions only: an API key is the wrong type.
    let key = call(&r, "/group/reports", AK_ADMIN).await;
    assert_eq!(key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(key.reason(), "token-type-mismatch");

    // Sessions need the permission, API keys the scope.
    assert_eq!(call(&r, "/group/invoices", &t.v2_admin).await.status, StatusCode::OK);
    assert_eq!(call(&r, "/group/invoices", &t.v1_admin).await.status, StatusCode::OK);
    assert_refused(&call(&r, "/group/invoices", &t.v2_billing).await, "missing-permission");
    assert_refused(
        &call(&r, "/group/invoices", &t.v2_no_org).await,
        "no-active-organization",
    );
    assert_eq!(call(&r, "/group/invoices", AK_ADMIN).await.text, "api_key");
    assert_refused(&call(&r, "/group/invoices", AK_PLAIN).await, "insufficient-scope");
}

#[tokio::test]
async fn a_forged_or_expired_session_never_reaches_the_role_check() {
    let r = router();
    let admin = v2(
        "user_admin",
        Some(V2Org {
            rol: "admin",
            fea: "o:invoices",
            per_fpm: Some(("read,create", "3")),
        }),
    );
    let forged = support::sign(&support::FORGER, &admin);
    let reply = call(&r, "/admin", &forged).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.reason(), "bad-signature");
    let mut expired = admin.clone();
    expired["exp"] = json!(support::now() - 3600);
    let reply = call(&r, "/admin", &token(&expired)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.reason(), "token-expired");
}
