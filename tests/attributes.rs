//! Behaviour of the attributes through real axum routers: each form accepts exactly what it
//! should and refuses the rest with the right status and RFC 6750 challenge; a type the route
//! does not accept never reaches its verifier; a refused request never has its body read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{FromRef, FromRequest, Request};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use tokengate::registry::{HandlerStatus, lookup};
use tokengate::verifier::StaticVerifier;
use tokengate::{
    Auth, AuthInfo, Guard, Match, PolicyLayer, RequirementKind, TokenGate, TokenType, TokenTypes, accepts_token,
    policy, public, require_permission, require_role, require_scope,
};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// Tokens and verifiers.

/// A JWT-shaped session token (classified as a session; the static verifier knows it).
fn session_jwt(name: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"user_{name}","sid":"sess_{name}"}}"#));
    format!("{header}.{payload}.c2ln")
}

const API_KEY_WRITE: &str = "ak_write_0123456789";
const API_KEY_READ: &str = "ak_read_0123456789";
const API_KEY_NONE: &str = "ak_none_0123456789";
const API_KEY_ADMIN: &str = "ak_admin_0123456789";
const M2M_ADMIN: &str = "mt_admin_0123456789";
const M2M_READ: &str = "mt_read_0123456789";
const OAUTH_READ: &str = "oat_read_0123456789";

fn info(token_type: TokenType, subject: &str, scopes: &[&str]) -> AuthInfo {
    let mut info = AuthInfo::new(token_type);
    info.subject = Some(subject.into());
    info.scopes = scopes.iter().map(|s| s.to_string()).collect();
    info
}

fn session_info(name: &str, org: Option<(&str, &[&str])>) -> AuthInfo {
    let mut info = info(TokenType::SessionToken, &format!("user_{name}"), &[]);
    info.session_id = Some(tokengate::ArcStr::from(format!("sess_{name}")));
    if let Some((role, permissions)) = org {
        info.org_id = Some("org_1".into());
        info.org_role = Some(role.into());
        info.org_permissions = permissions.iter().map(|p| p.to_string()).collect();
    }
    info
}

struct Fixture {
    state: AppState,
    session: Arc<StaticVerifier>,
    oauth: Arc<StaticVerifier>,
    api: Arc<StaticVerifier>,
    m2m: Arc<StaticVerifier>,
}

impl Fixture {
    fn new() -> Fixture {
        let session = Arc::new(
            StaticVerifier::new()
                .with_token(
                    session_jwt("admin"),
                    session_info("admin", Some(("org:admin", &["org:invoices:create"]))),
                )
                .with_token(session_jwt("member"), session_info("member", Some(("org:member", &[]))))
                .with_token(session_jwt("solo"), session_info("solo", None)),
        );
        let oauth = Arc::new(
            StaticVerifier::new().with_token(OAUTH_READ, info(TokenType::OAuthToken, "user_oauth", &["read:users"])),
        );
        let api = Arc::new(
            StaticVerifier::new()
                .with_token(
                    API_KEY_WRITE,
                    info(TokenType::ApiKey, "user_writer", &["write:users", "read:users"]),
                )
                .with_token(API_KEY_READ, info(TokenType::ApiKey, "user_reader", &["read:users"]))
                .with_token(API_KEY_NONE, info(TokenType::ApiKey, "org_nobody", &[]))
                .with_token(API_KEY_ADMIN, info(TokenType::ApiKey, "user_admin", &["admin"])),
        );
        let m2m = Arc::new(
            StaticVerifier::new()
                .with_token(M2M_ADMIN, info(TokenType::M2mToken, "mch_admin", &["admin"]))
                .with_token(M2M_READ, info(TokenType::M2mToken, "mch_reader", &["read:users"])),
        );
        let gate = TokenGate::builder()
            .verifier(TokenType::SessionToken, session.clone())
            .verifier(TokenType::OAuthToken, oauth.clone())
            .verifier(TokenType::ApiKey, api.clone())
            .verifier(TokenType::M2mToken, m2m.clone())
            .realm("tests")
            .build()
            .unwrap();
        Fixture {
            state: AppState {
                gate,
                body_reads: Arc::new(AtomicUsize::new(0)),
            },
            session,
            oauth,
            api,
            m2m,
        }
    }

    fn calls(&self) -> [usize; 4] {
        [
            self.session.calls(),
            self.oauth.calls(),
            self.api.calls(),
            self.m2m.calls(),
        ]
    }

    fn body_reads(&self) -> usize {
        self.state.body_reads.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// State and a body extractor that counts how often it runs.

#[derive(Clone)]
struct AppState {
    gate: TokenGate,
    body_reads: Arc<AtomicUsize>,
}

impl FromRef<AppState> for TokenGate {
    fn from_ref(state: &AppState) -> TokenGate {
        state.gate.clone()
    }
}

/// `Json<T>` that counts its runs: proves the body extractor never ran for a refused request.
struct CountedJson<T>(T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for CountedJson<T> {
    type Rejection = axum::extract::rejection::JsonRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        state.body_reads.fetch_add(1, Ordering::SeqCst);
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(CountedJson(value))
    }
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

// ---------------------------------------------------------------------------------------
// Handlers, one per form.

#[accepts_token(api_key)]
async fn api_only(auth: Auth) -> String {
    format!("{} {}", auth.token_type, auth.user_id.as_deref().unwrap_or("-"))
}

#[accepts_token(session_token, oauth_token, api_key)]
async fn several(auth: Auth) -> String {
    auth.token_type.to_string()
}

#[accepts_token(any)]
async fn any_type(auth: Auth) -> String {
    auth.token_type.to_string()
}

/// The seed's POST route: sessions pass, API keys need `write:users`.
#[accepts_token(session_token, api_key)]
#[require_scope(api_key: "write:users")]
async fn create_user(auth: Auth, CountedJson(body): CountedJson<NewUser>) -> (StatusCode, String) {
    (
        StatusCode::CREATED,
        format!("{} created {}", auth.subject.as_deref().unwrap_or("-"), body.name),
    )
}

#[accepts_token(api_key)]
#[require_scope("read:users", "write:users")]
async fn all_of() -> &'static str {
    "all"
}

#[accepts_token(api_key, m2m_token)]
#[require_scope(any("read:users", "admin"))]
async fn any_of() -> &'static str {
    "any"
}

/// Two attributes: `read:users` AND one of `write:users`/`admin`; the body is plain `Json`.
#[accepts_token(api_key, m2m_token)]
#[require_scope("read:users")]
#[require_scope(any("write:users", "admin"))]
async fn and_together(Json(body): Json<serde_json::Value>) -> String {
    body.to_string()
}

#[accepts_token(session_token, oauth_token, api_key, m2m_token)]
#[require_scope(api_key | m2m_token: "admin")]
async fn limited_to_machines(auth: Auth) -> String {
    auth.token_type.to_string()
}

/// `#[require_scope]` first: it collects `#[accepts_token]` below it.
#[require_scope("admin")]
#[tokengate::accepts_token(m2m_token)]
async fn order_reversed(auth: Auth) -> String {
    auth.machine_id.as_deref().unwrap_or_default().to_owned()
}

/// No `#[accepts_token]`: Clerk's default, session tokens only.
#[require_role("org:admin")]
async fn admins(auth: Auth) -> String {
    auth.org_role.as_deref().unwrap_or_default().to_owned()
}

#[require_permission(any("org:invoices:create", "org:invoices:manage"))]
async fn invoices() -> &'static str {
    "invoices"
}

/// Sessions need the role; API keys need the scope.
#[accepts_token(session_token, api_key)]
#[require_role("org:admin")]
#[require_scope(api_key: "admin")]
async fn reports(auth: Auth) -> String {
    auth.token_type.to_string()
}

#[public]
async fn health() -> &'static str {
    "ok"
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/api-only", get(api_only))
        .route("/several", get(several))
        .route("/any", get(any_type))
        .route("/users", post(create_user))
        .route("/all-of", get(all_of))
        .route("/any-of", get(any_of))
        .route("/and", post(and_together))
        .route("/machines", get(limited_to_machines))
        .route("/reversed", get(order_reversed))
        .route("/admins", get(admins))
        .route("/invoices", get(invoices))
        .route("/reports", get(reports))
        .route("/health", get(health))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// Requests.

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn challenge(&self) -> &str {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or("").to_owned()
    }
}

async fn send(router: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_owned())),
        None => request.body(axum::body::Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get_as(router: &Router, uri: &str, token: &str) -> Reply {
    send(router, "GET", uri, Some(token), None).await
}

fn assert_type_refused(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.reason(), "token-type-mismatch");
    assert_eq!(
        reply.challenge(),
        r#"Bearer realm="tests", error="invalid_token", error_description="token-type-mismatch""#
    );
}

fn assert_insufficient_scope(reply: &Reply, scopes: &str) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(reply.reason(), "insufficient-scope");
    assert_eq!(
        reply.challenge(),
        format!(
            r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient-scope", scope="{scopes}""#
        )
    );
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn accepts_one_type_and_never_verifies_another() {
    let f = Fixture::new();
    let app = router(f.state.clone());

    let ok = get_as(&app, "/api-only", API_KEY_READ).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "api_key user_reader"));
    assert_eq!(f.calls(), [0, 0, 1, 0]);

    for token in [session_jwt("admin").as_str(), M2M_ADMIN, OAUTH_READ] {
        assert_type_refused(&get_as(&app, "/api-only", token).await);
    }
    assert_eq!(f.calls(), [0, 0, 1, 0], "refused types never reach their verifier");

    let none = send(&app, "GET", "/api-only", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.challenge(),
        r#"Bearer realm="tests""#,
        "no error code without credentials"
    );

    let unknown = get_as(&app, "/api-only", "ak_unknown_0000").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.reason(), "unknown-token");
}

#[tokio::test]
async fn accepts_several_types() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    for (token, ty) in [
        (session_jwt("member"), "session_token"),
        (OAUTH_READ.to_owned(), "oauth_token"),
        (API_KEY_NONE.to_owned(), "api_key"),
    ] {
        let reply = get_as(&app, "/several", &token).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, ty));
    }
    assert_type_refused(&get_as(&app, "/several", M2M_ADMIN).await);
    assert_eq!(f.calls(), [1, 1, 1, 0]);
}

#[tokio::test]
async fn any_accepts_every_type() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    for (token, ty) in [
        (session_jwt("solo"), "session_token"),
        (OAUTH_READ.to_owned(), "oauth_token"),
        (API_KEY_NONE.to_owned(), "api_key"),
        (M2M_READ.to_owned(), "m2m_token"),
    ] {
        let reply = get_as(&app, "/any", &token).await;
        assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, ty));
    }
    assert_eq!(f.calls(), [1, 1, 1, 1]);
}

#[tokio::test]
async fn seed_route_sessions_pass_api_keys_need_the_scope() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let body = Some(r#"{"name":"ada"}"#);

    let session = send(&app, "POST", "/users", Some(&session_jwt("member")), body).await;
    assert_eq!(
        (session.status, session.body.as_str()),
        (StatusCode::CREATED, "user_member created ada")
    );

    let writer = send(&app, "POST", "/users", Some(API_KEY_WRITE), body).await;
    assert_eq!(
        (writer.status, writer.body.as_str()),
        (StatusCode::CREATED, "user_writer created ada")
    );
    assert_eq!(f.body_reads(), 2);

    let reader = send(&app, "POST", "/users", Some(API_KEY_READ), body).await;
    assert_insufficient_scope(&reader, "write:users");
    assert_eq!(reader.json()["missing_scopes"], serde_json::json!(["write:users"]));

    assert_type_refused(&send(&app, "POST", "/users", Some(M2M_ADMIN), body).await);
    assert_eq!(f.m2m.calls(), 0);
    assert_eq!(f.body_reads(), 2, "refused requests never reach the body extractor");
}

#[tokio::test]
async fn refused_requests_never_read_the_body() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    // Not JSON: reading it would be a 400/415/422, never a 401/403.
    let garbage = Some("{ this is not json");

    let no_token = send(&app, "POST", "/users", None, garbage).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    let bad_token = send(&app, "POST", "/users", Some("ak_unknown_0000"), garbage).await;
    assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);
    let wrong_type = send(&app, "POST", "/users", Some(OAUTH_READ), garbage).await;
    assert_eq!(wrong_type.status, StatusCode::UNAUTHORIZED);
    let no_scope = send(&app, "POST", "/users", Some(API_KEY_READ), garbage).await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN);
    assert_eq!(f.body_reads(), 0);

    // The same body with a token that passes: now the extractor runs and refuses it.
    let accepted = send(&app, "POST", "/users", Some(API_KEY_WRITE), garbage).await;
    assert_eq!(accepted.status, StatusCode::BAD_REQUEST);
    assert_eq!(f.body_reads(), 1);

    // A plain `Json<T>` behaves the same.
    let refused = send(&app, "POST", "/and", Some(API_KEY_READ), garbage).await;
    assert_insufficient_scope(&refused, "write:users admin");
    let passed = send(&app, "POST", "/and", Some(API_KEY_WRITE), garbage).await;
    assert_eq!(passed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn all_of_needs_every_scope() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    assert_eq!(get_as(&app, "/all-of", API_KEY_WRITE).await.status, StatusCode::OK);
    let reader = get_as(&app, "/all-of", API_KEY_READ).await;
    assert_insufficient_scope(&reader, "read:users write:users");
    assert_eq!(reader.json()["missing_scopes"], serde_json::json!(["write:users"]));
    let none = get_as(&app, "/all-of", API_KEY_NONE).await;
    assert_eq!(
        none.json()["missing_scopes"],
        serde_json::json!(["read:users", "write:users"])
    );
}

#[tokio::test]
async fn any_of_needs_one_scope() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    assert_eq!(get_as(&app, "/any-of", API_KEY_READ).await.status, StatusCode::OK);
    assert_eq!(get_as(&app, "/any-of", M2M_ADMIN).await.status, StatusCode::OK);
    assert_insufficient_scope(&get_as(&app, "/any-of", API_KEY_NONE).await, "read:users admin");
}

#[tokio::test]
async fn several_attributes_combine_with_and() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let post = |token: &'static str| {
        let app = app.clone();
        async move { send(&app, "POST", "/and", Some(token), Some("{}")).await }
    };
    assert_eq!(
        post(API_KEY_WRITE).await.status,
        StatusCode::OK,
        "read:users and write:users"
    );
    assert_insufficient_scope(&post(API_KEY_READ).await, "write:users admin");
    assert_insufficient_scope(&post(M2M_ADMIN).await, "read:users");
    assert_insufficient_scope(&post(API_KEY_ADMIN).await, "read:users");
}

#[tokio::test]
async fn limited_requirement_applies_to_the_named_types_only() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    assert_eq!(
        get_as(&app, "/machines", &session_jwt("solo")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&app, "/machines", OAUTH_READ).await.status,
        StatusCode::OK,
        "oauth is not limited"
    );
    assert_eq!(get_as(&app, "/machines", API_KEY_ADMIN).await.status, StatusCode::OK);
    assert_eq!(get_as(&app, "/machines", M2M_ADMIN).await.status, StatusCode::OK);
    assert_insufficient_scope(&get_as(&app, "/machines", API_KEY_READ).await, "admin");
    assert_insufficient_scope(&get_as(&app, "/machines", M2M_READ).await, "admin");
}

#[tokio::test]
async fn attribute_order_does_not_matter() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let ok = get_as(&app, "/reversed", M2M_ADMIN).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "mch_admin"));
    assert_insufficient_scope(&get_as(&app, "/reversed", M2M_READ).await, "admin");
    assert_type_refused(&get_as(&app, "/reversed", API_KEY_ADMIN).await);
    assert_eq!(f.api.calls(), 0);
}

#[tokio::test]
async fn roles_and_permissions_apply_to_sessions() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let admin = get_as(&app, "/admins", &session_jwt("admin")).await;
    assert_eq!((admin.status, admin.body.as_str()), (StatusCode::OK, "org:admin"));
    let member = get_as(&app, "/admins", &session_jwt("member")).await;
    assert_eq!(
        (member.status, member.reason().as_str()),
        (StatusCode::FORBIDDEN, "missing-role")
    );
    let solo = get_as(&app, "/admins", &session_jwt("solo")).await;
    assert_eq!(
        (solo.status, solo.reason().as_str()),
        (StatusCode::FORBIDDEN, "no-active-organization")
    );
    // The default accepts session tokens only; an API key never reaches its verifier.
    assert_type_refused(&get_as(&app, "/admins", API_KEY_ADMIN).await);
    assert_eq!(f.api.calls(), 0);

    assert_eq!(
        get_as(&app, "/invoices", &session_jwt("admin")).await.status,
        StatusCode::OK
    );
    let member = get_as(&app, "/invoices", &session_jwt("member")).await;
    assert_eq!(
        (member.status, member.reason().as_str()),
        (StatusCode::FORBIDDEN, "missing-permission")
    );

    // Mixed route: sessions need the role, API keys the scope.
    assert_eq!(
        get_as(&app, "/reports", &session_jwt("admin")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&app, "/reports", &session_jwt("member")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(get_as(&app, "/reports", API_KEY_ADMIN).await.status, StatusCode::OK);
    assert_insufficient_scope(&get_as(&app, "/reports", API_KEY_WRITE).await, "admin");
}

#[tokio::test]
async fn session_cookie_counts_only_where_sessions_are_accepted() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let with_cookie = |uri: &str| {
        Request::get(uri)
            .header(
                header::COOKIE,
                format!("theme=dark; __session={}", session_jwt("admin")),
            )
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let admins = app.clone().oneshot(with_cookie("/admins")).await.unwrap();
    assert_eq!(admins.status(), StatusCode::OK);
    // A route that accepts no sessions does not read the cookie: no credentials at all.
    let api_only = app.clone().oneshot(with_cookie("/api-only")).await.unwrap();
    assert_eq!(api_only.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api_only.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="tests""#);
    assert_eq!(f.calls(), [1, 0, 0, 0]);
}

#[tokio::test]
async fn public_routes_stay_open() {
    let f = Fixture::new();
    let app = router(f.state.clone());
    let reply = send(&app, "GET", "/health", None, None).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(f.calls(), [0, 0, 0, 0]);
}

fn record_of<H: 'static>(_: &H) -> &'static tokengate::registry::HandlerRecord {
    lookup::<H>().expect("the attribute registered the handler")
}

#[test]
fn handlers_are_registered_with_their_policy() {
    let record = record_of(&create_user);
    assert_eq!(record.name, "create_user");
    assert_eq!(record.module_path, module_path!());
    let source = std::fs::read_to_string(record.file).unwrap();
    let line = source.lines().nth(record.line as usize - 1).unwrap();
    assert!(line.contains("async fn create_user("), "line {}: {line}", record.line);
    let HandlerStatus::Guarded(policy) = record.status else {
        panic!("create_user is guarded");
    };
    assert_eq!(
        policy.accepts(),
        TokenTypes::EMPTY.with(TokenType::SessionToken).with(TokenType::ApiKey)
    );
    let [requirement] = policy.requirements() else {
        panic!("one requirement: {:?}", policy.requirements());
    };
    assert_eq!(requirement.kind(), RequirementKind::Scope);
    assert_eq!(requirement.matching(), Match::All);
    assert_eq!(requirement.values().collect::<Vec<_>>(), ["write:users"]);
    assert_eq!(requirement.applies_to(), TokenTypes::EMPTY.with(TokenType::ApiKey));

    let HandlerStatus::Guarded(any_of) = record_of(&any_of).status else {
        panic!("any_of is guarded");
    };
    assert_eq!(any_of.requirements()[0].matching(), Match::Any);
    assert!(
        any_of.requirements()[0].applies_to().is_empty(),
        "applies to every accepted type"
    );

    let HandlerStatus::Guarded(admins) = record_of(&admins).status else {
        panic!("admins is guarded");
    };
    assert_eq!(admins.accepts(), TokenTypes::DEFAULT);
    assert_eq!(admins.requirements()[0].kind(), RequirementKind::Role);

    assert!(matches!(record_of(&health).status, HandlerStatus::Public));
}

#[tokio::test]
async fn a_unit_test_calls_the_handler_directly() {
    let auth = Auth::new(info(TokenType::ApiKey, "user_direct", &[]).with_derived_ids());
    let out = api_only(Guard::for_tests(), auth).await;
    assert_eq!(out, "api_key user_direct");
    // A handler without parameters gets a guard that takes the whole request; the same call
    // works (the guard's kind is inferred).
    let out = all_of(Guard::for_tests()).await;
    assert_eq!(out, "all");
}

// ---------------------------------------------------------------------------------------
// `policy!` in a group layer.

async fn plain() -> &'static str {
    "plain"
}

#[accepts_token(api_key, m2m_token)]
#[require_scope(api_key: "write:users")]
async fn inner_guarded(auth: Auth) -> String {
    auth.token_type.to_string()
}

fn layered(f: &Fixture) -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/guarded", get(inner_guarded))
        .layer(PolicyLayer::new(
            f.state.gate.clone(),
            policy!(
                accepts_token(api_key, m2m_token),
                require_scope(any("read:users", "admin"))
            ),
        ))
        .with_state(f.state.clone())
}

#[tokio::test]
async fn policy_macro_in_a_group_layer() {
    let f = Fixture::new();
    let app = layered(&f);
    assert_eq!(get_as(&app, "/plain", API_KEY_READ).await.status, StatusCode::OK);
    assert_eq!(get_as(&app, "/plain", M2M_ADMIN).await.status, StatusCode::OK);
    assert_insufficient_scope(&get_as(&app, "/plain", API_KEY_NONE).await, "read:users admin");
    assert_type_refused(&get_as(&app, "/plain", &session_jwt("admin")).await);
    assert_eq!(f.session.calls(), 0);
    assert_eq!(
        send(&app, "GET", "/plain", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn policy_macro_composes_with_a_handler_attribute() {
    let f = Fixture::new();
    let app = layered(&f);
    // Both policies pass; the token is verified once, by the layer.
    let writer = get_as(&app, "/guarded", API_KEY_WRITE).await;
    assert_eq!((writer.status, writer.body.as_str()), (StatusCode::OK, "api_key"));
    assert_eq!(f.api.calls(), 1);
    assert_eq!(get_as(&app, "/guarded", M2M_ADMIN).await.status, StatusCode::OK);
    // The layer passes, the handler's own requirement refuses.
    assert_insufficient_scope(&get_as(&app, "/guarded", API_KEY_READ).await, "write:users");
    // The layer refuses before the handler's policy is consulted.
    assert_insufficient_scope(&get_as(&app, "/guarded", API_KEY_NONE).await, "read:users admin");
}

// ---------------------------------------------------------------------------------------
// A real server on a loopback socket.

#[tokio::test]
async fn over_a_real_socket() {
    let f = Fixture::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, router(f.state.clone())).into_future());
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/users");

    let created = client
        .post(&url)
        .bearer_auth(API_KEY_WRITE)
        .json(&serde_json::json!({"name": "grace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.text().await.unwrap(), "user_writer created grace");

    let refused = client
        .post(&url)
        .bearer_auth(API_KEY_READ)
        .json(&serde_json::json!({"name": "grace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="tests", error="insufficient_scope", error_description="insufficient-scope", scope="write:users""#
    );

    let wrong_type = client
        .post(&url)
        .bearer_auth(M2M_ADMIN)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(f.m2m.calls(), 0);
    assert_eq!(f.body_reads(), 1);
    server.abort();
}

#[test]
fn the_auth_is_shared_only_with_handlers_that_could_read_it() {
    use tokengate::PolicySource;
    // Checked when the test compiles. The guard is the only parameter: nothing runs after
    // it, so the `Auth` is not stored.
    const { assert!(!<__tokengate_policy_all_of as PolicySource>::SHARE_AUTH) };
    const { assert!(!<__tokengate_policy_invoices as PolicySource>::SHARE_AUTH) };
    // Any other parameter may read it (`Auth`, `Option<Auth>`, a custom extractor).
    const { assert!(<__tokengate_policy_and_together as PolicySource>::SHARE_AUTH) };
    const { assert!(<__tokengate_policy_limited_to_machines as PolicySource>::SHARE_AUTH) };
    const { assert!(<__tokengate_policy_create_user as PolicySource>::SHARE_AUTH) };
}
