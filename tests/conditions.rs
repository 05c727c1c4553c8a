//! Custom conditions, `#[require(predicate)]`, through a real router with RS256 session
//! tokens from `tokengate::testing`: a predicate reading a path parameter (only the user themself), the order of
//! checks (token, then scopes/roles, then the predicates in the order written — counted), and
//! the route-policy report in Markdown, JSON and OpenAPI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use axum::extract::{FromRequestParts, Path};
use http::StatusCode;
use serde_json::{Value, json};
use support::v2;
use tokengate::report::Format;
use tokengate::routing::{Router, get};
use tokengate::testing::TestIssuer;
use tokengate::{Auth, Parts, PolicyLayer, TokenGate, TokenType, policy, require, require_role};

static IS_SELF_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Only the user themself: the `{id}` path parameter is the caller's user id.
async fn is_self(auth: &Auth, parts: &mut Parts) -> bool {
    IS_SELF_CALLS.fetch_add(1, Ordering::SeqCst);
    match Path::<String>::from_request_parts(parts, &()).await {
        Ok(Path(id)) => auth.user_id.as_deref() == Some(id.as_str()),
        Err(_) => false,
    }
}

#[require(is_self)]
async fn profile(auth: Auth, Path(id): Path<String>) -> String {
    format!("{id}:{}", auth.user_id.as_deref().unwrap_or("-"))
}

/// Predicates in a module, named by path; each counts its calls.
mod checks {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokengate::{Auth, Parts};

    pub(crate) static FIRST_CALLS: AtomicUsize = AtomicUsize::new(0);
    pub(crate) static SECOND_CALLS: AtomicUsize = AtomicUsize::new(0);
    pub(crate) static AFTER_ROLE_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// Holds unless the request says `x-deny: first`.
    pub(crate) async fn first(_auth: &Auth, parts: &mut Parts) -> bool {
        FIRST_CALLS.fetch_add(1, Ordering::SeqCst);
        parts.headers.get("x-deny").is_none_or(|v| v != "first")
    }

    /// Holds unless the request says `x-deny: second`; sees what `first` saw.
    pub(crate) async fn second(_auth: &Auth, parts: &mut Parts) -> bool {
        SECOND_CALLS.fetch_add(1, Ordering::SeqCst);
        parts.headers.get("x-deny").is_none_or(|v| v != "second")
    }

    pub(crate) async fn after_role(_auth: &Auth, _parts: &mut Parts) -> bool {
        AFTER_ROLE_CALLS.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[require(checks::first, crate::checks::second)]
async fn ordered() -> &'static str {
    "ordered"
}

// Attribute order does not matter: the role is checked before the predicate either way.
#[require(checks::after_role)]
#[require_role("org:admin")]
async fn admin_and_condition() -> &'static str {
    "admin"
}

/// Signs the session tokens (tokengate::testing: a generated RSA key, real signatures).
static ISSUER: LazyLock<TestIssuer> = LazyLock::new(|| TestIssuer::new().unwrap());

fn gate() -> TokenGate {
    TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::new(ISSUER.verifier().unwrap()))
        .build()
        .unwrap()
}

fn routes() -> Router<TokenGate> {
    Router::new()
        .route("/users/{id}", get(profile))
        .route("/ordered", get(ordered))
        .route("/admin", get(admin_and_condition))
}

fn app() -> axum::Router {
    routes().with_state(gate()).into_axum()
}

/// A session token of `user` under the issuer's key id, signed with another key.
fn forge(user: &str) -> String {
    let mut claims = v2(user, None);
    claims["iss"] = json!(tokengate::testing::TEST_ISSUER);
    support::sign_with_kid(&support::FORGER, tokengate::testing::TEST_KID, &claims)
}

/// A Clerk v2 session of `user`, with the organization `org_1` and role `role` when given.
fn session(user: &str, role: Option<&str>) -> String {
    let mut token = ISSUER.session(user).claim("v", 2);
    if let Some(rol) = role {
        token = token
            .features("o:invoices")
            .claim("o", json!({"id": "org_1", "rol": rol, "slg": "acme"}));
    }
    token.sign().unwrap()
}

#[tokio::test]
async fn a_predicate_reads_the_path_parameter() {
    let app = app();
    let alice = session("user_alice", None);
    let calls = || IS_SELF_CALLS.load(Ordering::SeqCst);

    let own = support::get(&app, "/users/user_alice", Some(&alice)).await;
    assert_eq!(
        (own.status, own.text.as_str()),
        (StatusCode::OK, "user_alice:user_alice")
    );
    assert_eq!(calls(), 1);

    let other = support::get(&app, "/users/user_bob", Some(&alice)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text);
    assert_eq!(other.reason(), "condition-failed");
    assert!(
        other.json()["message"].as_str().unwrap().contains("`is_self`"),
        "{}",
        other.text
    );
    assert_eq!(other.json()["missing_conditions"], json!(["is_self"]));
    assert!(
        other
            .challenge
            .as_deref()
            .unwrap()
            .contains("error_description=\"condition-failed\"")
    );
    assert_eq!(calls(), 2);

    // A bad token is refused before any predicate runs.
    let forged = forge("user_alice");
    let expired = ISSUER
        .session("user_alice")
        .claim("v", 2)
        .expires_in(-3600)
        .sign()
        .unwrap();
    for (bad, reason) in [
        (Some(forged.as_str()), "bad-signature"),
        (Some(expired.as_str()), "token-expired"),
        (Some("not-a-token"), ""),
        (None, "missing-credentials"),
    ] {
        let reply = support::get(&app, "/users/user_alice", bad).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad:?}: {}", reply.text);
        if !reason.is_empty() {
            assert_eq!(reply.reason(), reason);
        }
    }
    assert_eq!(calls(), 2, "the predicate never ran for a bad token");
}

#[tokio::test]
async fn predicates_run_in_order_and_stop_at_the_first_failure() {
    use checks::{FIRST_CALLS, SECOND_CALLS};
    let app = app();
    let alice = session("user_alice", None);
    let calls = || (FIRST_CALLS.load(Ordering::SeqCst), SECOND_CALLS.load(Ordering::SeqCst));
    let send = |deny: Option<&'static str>| {
        let app = app.clone();
        let alice = alice.clone();
        async move {
            let mut request = http::Request::get("/ordered").header("authorization", format!("Bearer {alice}"));
            if let Some(deny) = deny {
                request = request.header("x-deny", deny);
            }
            let response = tower::ServiceExt::oneshot(app, request.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            (status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
        }
    };
    assert_eq!(send(None).await.0, StatusCode::OK);
    assert_eq!(calls(), (1, 1));
    let (status, body) = send(Some("first")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("condition-failed"))
    );
    assert_eq!(body["missing_conditions"], json!(["checks::first"]));
    assert_eq!(
        calls(),
        (2, 1),
        "the second predicate is not called when the first fails"
    );
    let (status, body) = send(Some("second")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["missing_conditions"], json!(["crate::checks::second"]));
    assert_eq!(calls(), (3, 2));
}

#[tokio::test]
async fn predicates_run_after_roles() {
    let app = app();
    let calls = || checks::AFTER_ROLE_CALLS.load(Ordering::SeqCst);
    let member = support::get(&app, "/admin", Some(&session("user_m", Some("member")))).await;
    assert_eq!(member.reason(), "missing-role");
    let solo = support::get(&app, "/admin", Some(&session("user_s", None))).await;
    assert_eq!(solo.reason(), "no-active-organization");
    assert_eq!(calls(), 0, "a refused role never reaches the predicate");
    let admin = support::get(&app, "/admin", Some(&session("user_a", Some("admin")))).await;
    assert_eq!((admin.status, admin.text.as_str()), (StatusCode::OK, "admin"));
    assert_eq!(calls(), 1);
}

#[test]
fn the_report_lists_conditions_beside_the_other_requirements() {
    let report = routes().report();

    let markdown = report.render(Format::Markdown);
    let row = |path: &str| {
        markdown
            .lines()
            .find(|l| l.contains(&format!("| `{path}` |")))
            .unwrap_or_else(|| panic!("no row for {path}:\n{markdown}"))
            .to_owned()
    };
    assert!(row("/users/{id}").contains("| condition `is_self` |"), "{markdown}");
    assert!(
        row("/ordered").contains("| condition `checks::first`; condition `crate::checks::second` |"),
        "{markdown}"
    );
    assert!(
        row("/admin").contains("| role `org:admin` (for session_token); condition `checks::after_role` |"),
        "{markdown}"
    );

    let json: Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    let route = |path: &str| {
        json["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == path)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        route("/users/{id}")["requirements"],
        json!([{"kind": "condition", "match": "all", "values": ["is_self"], "applies_to": ["session_token"]}])
    );
    let admin = route("/admin");
    let kinds: Vec<&str> = admin["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["role", "condition"]);

    let openapi: Value = serde_json::from_str(&report.render(Format::OpenApi)).unwrap();
    let description = openapi["paths"]["/users/{id}"]["get"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("Requires condition `is_self`."),
        "{description}"
    );
    assert!(description.contains("`condition-failed`"), "{description}");
    let description = openapi["paths"]["/admin"]["get"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("Requires role `org:admin` (for session_token); condition `checks::after_role`."),
        "{description}"
    );
    // Conditions are not scopes: the security requirement lists none.
    assert_eq!(
        openapi["paths"]["/users/{id}"]["get"]["security"],
        json!([{"session_token": []}])
    );
}

static IN_PATH_ORG_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A group layer with a condition: `/orgs/{org}/...` only for admins of that organization.
fn org_routes(gate: TokenGate) -> Router<TokenGate> {
    Router::new()
        .route("/orgs/{org}/stats", get(|| async { "stats" }))
        .guard(
            PolicyLayer::new(gate, policy!(require_role("org:admin"))).with_condition("in_path_org", |auth, parts| {
                Box::pin(async move {
                    IN_PATH_ORG_CALLS.fetch_add(1, Ordering::SeqCst);
                    match Path::<String>::from_request_parts(parts, &()).await {
                        Ok(Path(org)) => auth.org_id.as_deref() == Some(org.as_str()),
                        Err(_) => false,
                    }
                })
            }),
        )
}

#[tokio::test]
async fn a_group_layer_condition_reads_the_path_and_is_reported() {
    let gate = gate();
    let app = org_routes(gate.clone()).with_state(gate.clone()).into_axum();
    let calls = || IN_PATH_ORG_CALLS.load(Ordering::SeqCst);
    let admin = session("user_a", Some("admin"));

    let own = support::get(&app, "/orgs/org_1/stats", Some(&admin)).await;
    assert_eq!((own.status, own.text.as_str()), (StatusCode::OK, "stats"));
    assert_eq!(calls(), 1);
    let other = support::get(&app, "/orgs/org_2/stats", Some(&admin)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.reason(), "condition-failed");
    assert_eq!(other.json()["missing_conditions"], json!(["in_path_org"]));
    assert_eq!(calls(), 2);
    // The policy comes first: a member or a bad token never reaches the predicate.
    let member = support::get(&app, "/orgs/org_1/stats", Some(&session("user_m", Some("member")))).await;
    assert_eq!(member.reason(), "missing-role");
    let forged = forge("user_a");
    let reply = support::get(&app, "/orgs/org_1/stats", Some(&forged)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls(), 2);

    let markdown = org_routes(gate).report().render(Format::Markdown);
    assert!(
        markdown.contains("| role `org:admin` (for session_token); condition `in_path_org` |"),
        "{markdown}"
    );
}

#[test]
fn a_handler_with_conditions_keeps_the_auth_for_them() {
    use tokengate::PolicySource;
    const { assert!(<__tokengate_policy_ordered as PolicySource>::SHARE_AUTH) };
}
