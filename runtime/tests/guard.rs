//! The guard through real axum routers: every branch of extraction, classification, type
//! checks, verification and requirements, in-process (`oneshot`) and over a loopback socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode, header};
use tokengate_runtime::keys::{IssuedKey, KeySpec, KeyStore, KeyVerifier, MemoryKeyStore};
use tokengate_runtime::policy::validate_scope;
use tokengate_runtime::verifier::{Credential, VerifyFuture};
use tokengate_runtime::{
    Auth, AuthInfo, Guard, Match, Policy, PolicyLayer, PolicySource, Requirement, RequirementKind, StaticVerifier,
    TokenGate, TokenType, TokenTypes, Verifier, VerifyError,
};
use tower::ServiceExt as _;

fn jwt(header: &str, payload: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

fn session_jwt() -> String {
    jwt(r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"sub":"user_2"}"#)
}

fn info(token_type: TokenType, subject: &str, scopes: &[&str]) -> AuthInfo {
    let mut info = AuthInfo::new(token_type);
    info.subject = Some(subject.into());
    info.scopes = scopes.iter().map(|s| s.to_string()).collect();
    info
}

struct Verifiers {
    keys: Arc<StaticVerifier>,
    sessions: Arc<StaticVerifier>,
    m2m: Arc<StaticVerifier>,
}

fn verifiers() -> Verifiers {
    Verifiers {
        keys: Arc::new(
            StaticVerifier::new()
                .with_token("ak_writer", info(TokenType::ApiKey, "user_1", &["write:users"]))
                .with_token("ak_reader", info(TokenType::ApiKey, "user_1", &["read:users"])),
        ),
        sessions: Arc::new(
            StaticVerifier::new().with_token(session_jwt(), info(TokenType::SessionToken, "user_2", &[])),
        ),
        m2m: Arc::new(
            StaticVerifier::new().with_token("mt_machine", info(TokenType::M2mToken, "mch_1", &["write:users"])),
        ),
    }
}

fn gate(v: &Verifiers) -> TokenGate {
    TokenGate::builder()
        .verifier(TokenType::ApiKey, v.keys.clone())
        .verifier(TokenType::SessionToken, v.sessions.clone())
        .verifier(TokenType::M2mToken, v.m2m.clone())
        .realm("test")
        .build()
        .unwrap()
}

static WRITE_USERS: [std::borrow::Cow<'static, str>; 1] = [std::borrow::Cow::Borrowed("write:users")];

struct ApiKeyOnly;
impl PolicySource for ApiKeyOnly {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
        &P
    }
}

/// The seed's POST route: sessions pass, API keys need `write:users`.
struct SeedPost;
impl PolicySource for SeedPost {
    fn policy() -> &'static Policy {
        static REQ: [Requirement; 1] = [Requirement::from_parts(
            RequirementKind::Scope,
            Match::All,
            &WRITE_USERS,
            TokenTypes::EMPTY.with(TokenType::ApiKey),
        )];
        static P: Policy = Policy::from_parts(
            TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::OAuthToken, TokenType::ApiKey]),
            &REQ,
        );
        &P
    }
}

struct OAuthOnly;
impl PolicySource for OAuthOnly {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken));
        &P
    }
}

struct Sessions;
impl PolicySource for Sessions {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::DEFAULT);
        &P
    }
}

async fn whoami(_g: Guard<ApiKeyOnly>, auth: Auth) -> String {
    format!("{}:{}", auth.token_type, auth.user_id.as_deref().unwrap_or("-"))
}

static BODIES_READ: AtomicUsize = AtomicUsize::new(0);

async fn create(_g: Guard<SeedPost>, auth: Auth, axum::Json(body): axum::Json<serde_json::Value>) -> String {
    BODIES_READ.fetch_add(1, Ordering::SeqCst);
    format!("{}:{}", auth.token_type, body["n"])
}

fn app(gate: TokenGate) -> Router {
    Router::new()
        .route("/key", get(whoami))
        .route("/seed", post(create))
        .route("/oauth", get(|_g: Guard<OAuthOnly>| async { "oauth" }))
        .route(
            "/session",
            get(|_g: Guard<Sessions>, auth: Auth| async move { auth.subject.as_deref().unwrap().to_owned() }),
        )
        .route(
            "/no-policy",
            get(|auth: Auth| async move { auth.subject.as_deref().unwrap().to_owned() }),
        )
        .with_state(gate)
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

async fn call(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let challenge = header(header::WWW_AUTHENTICATE);
    let retry_after = header(header::RETRY_AFTER);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Reply {
        status,
        challenge,
        retry_after,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn get_with(uri: &str, authorization: Option<&[u8]>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, http::HeaderValue::from_bytes(a).unwrap());
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn valid_api_key_reaches_the_handler_with_its_identity() {
    let v = verifiers();
    let r = call(&app(gate(&v)), get_with("/key", Some(b"Bearer ak_writer"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "api_key:user_1");
    assert_eq!(v.keys.calls(), 1);
}

#[tokio::test]
async fn no_credentials_is_401_without_error_code() {
    let v = verifiers();
    let r = call(&app(gate(&v)), get_with("/key", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge.as_deref(), Some("Bearer realm=\"test\""));
    assert_eq!(r.json()["error"], "Unauthorized");
    assert_eq!(r.json()["reason"], "missing-credentials");
    assert!(
        r.json()["message"].as_str().unwrap().contains("Bearer <token>"),
        "{}",
        r.json()
    );
    // Another scheme, or a token without one, carries no bearer credentials either: the same
    // answer, with a message that says to use the Bearer scheme (and never repeats the value).
    for value in [&b"Basic dXNlcjpwdw=="[..], b"ak_nope", b"Token abc"] {
        let r = call(&app(gate(&v)), get_with("/key", Some(value))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.challenge.as_deref(), Some("Bearer realm=\"test\""));
        assert_eq!(r.json()["reason"], "missing-credentials");
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("`Bearer <token>` (another scheme"), "{message}");
        assert!(!message.contains("dXNlcjpwdw") && !message.contains("nope") && !message.contains("abc"));
    }
}

#[tokio::test]
async fn unknown_key_is_invalid_token() {
    let v = verifiers();
    let r = call(&app(gate(&v)), get_with("/key", Some(b"Bearer ak_nope"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.challenge.as_deref().unwrap().contains("error=\"invalid_token\""));
    assert_eq!(r.json()["reason"], "unknown-token");
}

#[tokio::test]
async fn wrong_type_is_rejected_before_any_verifier() {
    let v = verifiers();
    let router = app(gate(&v));
    for token in [session_jwt(), "mt_machine".to_owned(), "oat_x".to_owned()] {
        let r = call(&router, get_with("/key", Some(format!("Bearer {token}").as_bytes()))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(r.json()["reason"], "token-type-mismatch");
        assert_eq!(r.json()["accepted"], serde_json::json!(["api_key"]));
    }
    assert_eq!(v.keys.calls() + v.sessions.calls() + v.m2m.calls(), 0);
}

#[tokio::test]
async fn bad_inputs_are_clear_4xx() {
    let v = verifiers();
    let router = app(gate(&v));
    let big = format!("Bearer ak_{}", "a".repeat(9 * 1024));
    let not_json_header = format!(
        "Bearer {}.{}.sig",
        URL_SAFE_NO_PAD.encode("nope"),
        URL_SAFE_NO_PAD.encode("{}")
    );
    let cases: Vec<(&[u8], StatusCode, &str)> = vec![
        (b"", StatusCode::UNAUTHORIZED, "missing-credentials"),
        (b"Bearer", StatusCode::BAD_REQUEST, "missing-bearer-token"),
        (b"Bearer ", StatusCode::BAD_REQUEST, "missing-bearer-token"),
        (
            b"Bearer  ak_writer",
            StatusCode::BAD_REQUEST,
            "malformed-authorization-header",
        ),
        (
            b"Bearer ak_writer extra",
            StatusCode::BAD_REQUEST,
            "malformed-authorization-header",
        ),
        (
            b"Bearer \xff\xfe",
            StatusCode::BAD_REQUEST,
            "malformed-authorization-header",
        ),
        (big.as_bytes(), StatusCode::BAD_REQUEST, "authorization-too-large"),
        (not_json_header.as_bytes(), StatusCode::UNAUTHORIZED, "malformed-token"),
        (b"Bearer a.b.c.d", StatusCode::UNAUTHORIZED, "malformed-token"),
        (b"Bearer random-opaque", StatusCode::UNAUTHORIZED, "malformed-token"),
    ];
    for (value, status, reason) in cases {
        let r = call(&router, get_with("/key", Some(value))).await;
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(value));
        assert_eq!(r.json()["reason"], reason, "{}", String::from_utf8_lossy(value));
        assert!(!r.body.contains("ak_writer"), "the token must not be echoed");
        if status == StatusCode::BAD_REQUEST {
            assert!(r.challenge.as_deref().unwrap().contains("error=\"invalid_request\""));
        }
    }
    // The lower-case scheme is fine.
    let r = call(&router, get_with("/key", Some(b"bearer ak_writer"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(v.keys.calls(), 1, "only the valid request reached the verifier");
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let v = verifiers();
    let request = Request::get("/key")
        .header(header::AUTHORIZATION, "Bearer ak_writer")
        .header(header::AUTHORIZATION, "Bearer ak_reader")
        .body(Body::empty())
        .unwrap();
    let r = call(&app(gate(&v)), request).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["reason"], "multiple-authorization-headers");
}

#[tokio::test]
async fn cookie_carries_sessions_only_and_the_header_wins() {
    let v = verifiers();
    let router = app(gate(&v));
    let with_cookie = |cookie: String, auth: Option<&str>| {
        let mut b = Request::get("/session").header(header::COOKIE, cookie);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).unwrap()
    };
    let r = call(
        &router,
        with_cookie(format!("theme=dark; __session={}", session_jwt()), None),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "user_2"));

    let r = call(&router, with_cookie("__session=mt_machine".into(), None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["reason"], "machine-token-in-cookie");

    // Header and cookie together: the header is used (here: a key, not accepted).
    let r = call(
        &router,
        with_cookie(format!("__session={}", session_jwt()), Some("Bearer ak_writer")),
    )
    .await;
    assert_eq!(r.json()["reason"], "token-type-mismatch");
    assert_eq!(v.m2m.calls() + v.keys.calls(), 0);

    // A route that does not accept sessions ignores the cookie.
    let request = Request::get("/key")
        .header(header::COOKIE, format!("__session={}", session_jwt()))
        .body(Body::empty())
        .unwrap();
    let r = call(&router, request).await;
    assert_eq!(r.json()["reason"], "missing-credentials");
}

#[tokio::test]
async fn seed_post_sessions_pass_keys_need_the_scope_and_bodies_wait() {
    let v = verifiers();
    let router = app(gate(&v));
    let post = |auth: &str, body: &'static str| {
        Request::post("/seed")
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let before = BODIES_READ.load(Ordering::SeqCst);
    let r = call(&router, post(&format!("Bearer {}", session_jwt()), r#"{"n":1}"#)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "session_token:1"));
    let r = call(&router, post("Bearer ak_writer", r#"{"n":2}"#)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "api_key:2"));

    let r = call(&router, post("Bearer ak_reader", r#"{"n":3}"#)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "Forbidden");
    assert_eq!(r.json()["missing_scopes"], serde_json::json!(["write:users"]));
    assert!(r.json()["message"].as_str().unwrap().contains("write:users"));
    let challenge = r.challenge.as_deref().unwrap();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"write:users\""), "{challenge}");

    // A bad token with a body that would not even parse: the guard answers, not Json.
    let r = call(&router, post("Bearer ak_nope", "{not json")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&router, post("Bearer mt_machine", "{not json")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        BODIES_READ.load(Ordering::SeqCst) - before,
        2,
        "only the two accepted bodies were read"
    );
}

#[tokio::test]
async fn accepted_type_without_verifier_is_a_500_and_a_startup_error() {
    let v = verifiers();
    let g = gate(&v);
    let token = jwt(r#"{"alg":"RS256","typ":"at+jwt"}"#, r#"{"sub":"user_1"}"#);
    let r = call(
        &app(g.clone()),
        get_with("/oauth", Some(format!("Bearer {token}").as_bytes())),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["reason"], "server-misconfigured");
    assert_eq!(
        g.check_policy(OAuthOnly::policy()),
        Err(TokenTypes::EMPTY.with(TokenType::OAuthToken))
    );
    assert_eq!(g.check_policy(ApiKeyOnly::policy()), Ok(()));
}

#[tokio::test]
async fn auth_without_a_policy_is_a_500_not_an_open_door() {
    let v = verifiers();
    let r = call(&app(gate(&v)), get_with("/no-policy", Some(b"Bearer ak_writer"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v.keys.calls(), 0);
}

struct Down;
impl Verifier for Down {
    fn verify<'a>(&'a self, _credential: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async {
            Err(VerifyError::Unavailable {
                retry_after: Some(Duration::from_secs(7)),
                detail: "database is locked".into(),
            })
        })
    }
}

#[tokio::test]
async fn backend_outage_is_503_with_retry_after() {
    let g = TokenGate::builder()
        .verifier(TokenType::ApiKey, Arc::new(Down))
        .build()
        .unwrap();
    let r = call(&app(g), get_with("/key", Some(b"Bearer ak_writer"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.retry_after.as_deref(), Some("7"));
    assert!(
        !r.body.contains("database is locked"),
        "backend details stay in the logs"
    );
}

#[tokio::test]
async fn opaque_oauth_tokens_need_introspection_configured() {
    let oauth =
        Arc::new(StaticVerifier::new().with_token("opaque-from-keycloak", info(TokenType::OAuthToken, "user_9", &[])));
    let without = TokenGate::builder()
        .verifier(TokenType::OAuthToken, oauth.clone())
        .build()
        .unwrap();
    let r = call(&app(without), get_with("/oauth", Some(b"Bearer opaque-from-keycloak"))).await;
    assert_eq!(r.json()["reason"], "malformed-token");
    assert_eq!(oauth.calls(), 0);
    let with = TokenGate::builder()
        .verifier(TokenType::OAuthToken, oauth.clone())
        .opaque_oauth_tokens(true)
        .build()
        .unwrap();
    let r = call(&app(with), get_with("/oauth", Some(b"Bearer opaque-from-keycloak"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(oauth.calls(), 1);
}

#[tokio::test]
async fn rejections_can_be_replaced_per_kind() {
    let v = verifiers();
    let g = TokenGate::builder()
        .verifier(TokenType::ApiKey, v.keys.clone())
        .on_rejection(|r| {
            (r.reason() == "missing-credentials")
                .then(|| axum::response::IntoResponse::into_response((StatusCode::UNAUTHORIZED, "please sign in")))
        })
        .build()
        .unwrap();
    let router = app(g);
    let r = call(&router, get_with("/key", None)).await;
    assert_eq!(r.body, "please sign in");
    let r = call(&router, get_with("/key", Some(b"Bearer ak_nope"))).await;
    assert_eq!(r.json()["reason"], "unknown-token", "other kinds keep the default");
}

#[test]
fn builder_refuses_bad_configuration() {
    assert!(TokenGate::builder().realm("a\"b").build().is_err());
    let overlapping = tokengate_runtime::classify::Prefixes {
        api_key: "k_".into(),
        m2m_token: "k_m".into(),
        ..Default::default()
    };
    let err = TokenGate::builder().prefixes(overlapping).build().unwrap_err();
    assert!(err.to_string().contains("distinct"), "{err}");
    assert!(validate_scope("write:users").is_ok());
}

#[derive(Clone)]
struct AppState {
    gate: TokenGate,
}

impl FromRef<AppState> for TokenGate {
    fn from_ref(state: &AppState) -> TokenGate {
        state.gate.clone()
    }
}

#[tokio::test]
async fn group_layer_composes_with_handler_policy_and_verifies_once() {
    let v = verifiers();
    let g = gate(&v);
    let machines = Policy::accepting(TokenTypes::from_slice(&[TokenType::ApiKey, TokenType::M2mToken]))
        .require(Requirement::new(RequirementKind::Scope, Match::Any, ["write:users", "read:users"]).unwrap());
    let router = Router::new()
        .route("/admin/key", get(whoami))
        .route(
            "/admin/any",
            get(|auth: Auth| async move { auth.token_type.to_string() }),
        )
        .layer(PolicyLayer::new(g.clone(), machines))
        .with_state(AppState { gate: g });

    let r = call(&router, get_with("/admin/key", Some(b"Bearer ak_reader"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(v.keys.calls(), 1, "the handler reused the layer's verification");

    // The layer lets an M2M token through; the handler's own policy (api_key only) refuses it.
    let r = call(&router, get_with("/admin/key", Some(b"Bearer mt_machine"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["reason"], "token-type-mismatch");
    let r = call(&router, get_with("/admin/any", Some(b"Bearer mt_machine"))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "m2m_token"));

    // The layer refuses sessions before the handler runs.
    let r = call(
        &router,
        get_with("/admin/any", Some(format!("Bearer {}", session_jwt()).as_bytes())),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(v.sessions.calls(), 0);
}

/// Sends raw bytes over a real socket: the only way to send what `http` would refuse to build.
async fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn over_a_loopback_socket() {
    let v = verifiers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(gate(&v));
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let ok = raw_request(
        addr,
        b"GET /key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ak_writer\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("api_key:user_1"), "{ok}");

    let latin1 = raw_request(
        addr,
        b"GET /key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xe9t\xe9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(latin1.starts_with("HTTP/1.1 400"), "{latin1}");
    assert!(latin1.contains("malformed-authorization-header"), "{latin1}");

    let big = format!(
        "GET /key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let big = raw_request(addr, big.as_bytes()).await;
    assert!(big.starts_with("HTTP/1.1 400"), "{big}");

    let none = raw_request(addr, b"GET /key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(
        none.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"test\""),
        "{none}"
    );
    server.abort();
}

/// A handler-level condition that reads a path parameter: callers may only read themselves.
struct SelfOnly;
impl PolicySource for SelfOnly {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
        &P
    }

    fn conditions<'a>(
        auth: &'a Auth,
        parts: &'a mut http::request::Parts,
    ) -> Option<tokengate_runtime::guard::ConditionFuture<'a>> {
        Some(Box::pin(async move {
            use axum::RequestPartsExt as _;
            let axum::extract::Path(id) = parts
                .extract::<axum::extract::Path<String>>()
                .await
                .map_err(|_| tokengate_runtime::Rejection::condition_failed("is_self"))?;
            if auth.user_id.as_deref() == Some(id.as_str()) {
                Ok(())
            } else {
                Err(tokengate_runtime::Rejection::condition_failed("is_self"))
            }
        }))
    }
}

#[tokio::test]
async fn conditions_run_after_the_policy_and_read_path_parameters() {
    let v = verifiers();
    let router = Router::new()
        .route("/users/{id}", get(|_g: Guard<SelfOnly>| async { "mine" }))
        .with_state(gate(&v));
    let r = call(&router, get_with("/users/user_1", Some(b"Bearer ak_reader"))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "mine"));
    let r = call(&router, get_with("/users/user_2", Some(b"Bearer ak_reader"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["reason"], "condition-failed");
    assert!(r.json()["message"].as_str().unwrap().contains("is_self"));
    // The token check comes first: a bad token never reaches the condition.
    let r = call(&router, get_with("/users/user_1", Some(b"Bearer ak_nope"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Requests for keys the key verifier remembers take the guard's synchronous path (the
/// verifier answers from memory, without a future): the `Auth` is still shared with the
/// handler, and conditions still run.
#[tokio::test]
async fn the_synchronous_path_shares_the_auth_and_runs_conditions() {
    let store = Arc::new(MemoryKeyStore::new());
    let keys = KeyVerifier::new(store.clone());
    let writer = keys
        .issue(KeySpec::api_key("user_1", "writer").scope("write:users"))
        .await
        .unwrap();
    let reader = keys
        .issue(KeySpec::api_key("user_1", "reader").scope("read:users"))
        .await
        .unwrap();
    for key in [&writer, &reader] {
        keys.verify_secret(key.secret.expose()).await.unwrap();
    }
    // Revoked in the store behind the verifier's back: only an answer from memory accepts them.
    for key in [&writer, &reader] {
        store.revoke(&key.record.id, None, 0).await.unwrap();
    }
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, Arc::new(keys))
        .build()
        .unwrap();
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/users/{id}", get(|_g: Guard<SelfOnly>| async { "mine" }))
        .route("/plain", get(|_g: Guard<ApiKeyOnly>| async { "plain" }))
        .with_state(gate);
    let bearer = |key: &IssuedKey| format!("Bearer {}", key.secret.expose()).into_bytes();

    // A handler that takes the Auth finds it, though the guard's future was ready at once.
    let r = call(&router, get_with("/whoami", Some(&bearer(&writer)))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("user_1"), "{}", r.body);
    // Conditions still run, and still refuse.
    let r = call(&router, get_with("/users/user_1", Some(&bearer(&reader)))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "mine"));
    let r = call(&router, get_with("/users/user_2", Some(&bearer(&reader)))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["reason"], "condition-failed");
    let r = call(&router, get_with("/plain", Some(&bearer(&reader)))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "plain"));
    // Refusals too: a checksum that does not match is refused before any lookup.
    let r = call(&router, get_with("/plain", Some(b"Bearer ak_nope"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
