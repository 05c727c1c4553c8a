//! A test double of Clerk's Backend API on loopback, built to the excerpted OpenAPI spec
//! (`tests/data/clerk-bapi-token-verification.yml`): it checks every request's path, method,
//! `Authorization`, `Clerk-API-Version`, content type and body schema, and validates its own
//! JSON answers against the response schemas before sending them. Anything off-spec is
//! recorded as a violation, which the tests assert empty.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use tokengate_runtime::budget::{CallBudget, Rate};
use tokengate_runtime::clerk::{ClerkConfig, ClerkMachineVerifier};
use tokengate_runtime::{Auth, Policy, PolicyLayer, TokenGate, TokenType, TokenTypes};

pub const SECRET: &str = "sk_test_D0ubleSecretKeyValue0123456789abcdef";
pub const WRONG_SECRET: &str = "sk_test_WrongSecretKeyValue0123456789abcdef";
pub const MACHINE_SECRET: &str = "ak_MachineSecretKeyValue0123456789abcdef";
pub const VERSION: &str = "2026-05-12";

pub const API_KEYS: &str = "/api_keys/verify";
pub const M2M: &str = "/m2m_tokens/verify";
pub const OAUTH: &str = "/oauth_applications/access_tokens/verify";

pub const USER: &str = "user_2xhFjEI5X2qWRvtV13BzSj8H6Dk";
pub const ORG: &str = "org_2xhFjEI5X2qWRvtV13BzSj8H6Dk";
pub const MACHINE: &str = "mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk";
pub const OTHER_MACHINE: &str = "mch_2yGkLpQ7Y3rXSwtU24CzTk9I7Em";

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------- the spec

/// The excerpted OpenAPI document as JSON, with OpenAPI 3.0's `nullable: true` rewritten to
/// JSON Schema (`type: [T, "null"]`).
pub struct Spec {
    doc: Value,
}

fn rewrite_nullable(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                }
            }
            map.values_mut().for_each(rewrite_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

impl Spec {
    pub fn load() -> Spec {
        let text = include_str!("../data/clerk-bapi-token-verification.yml");
        let mut doc: Value = serde_norway::from_str(text).expect("the spec is YAML");
        rewrite_nullable(&mut doc);
        Spec { doc }
    }

    /// A schema with the document's `components` beside it, so `#/components/...` refs resolve.
    fn rooted(&self, schema: &Value) -> Value {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        root
    }

    pub fn request_schema(&self, path: &str) -> Value {
        let s = &self.doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert!(s.is_object(), "no request schema for {path}");
        self.rooted(s)
    }

    pub fn response_schema(&self, path: &str, method: &str, status: &str) -> Value {
        let mut response = &self.doc["paths"][path][method]["responses"][status];
        if let Some(Value::String(r)) = response.get("$ref") {
            let name = r.rsplit('/').next().unwrap();
            response = &self.doc["components"]["responses"][name];
        }
        let s = &response["content"]["application/json"]["schema"];
        assert!(s.is_object(), "no response schema for {method} {path} {status}");
        self.rooted(s)
    }

    pub fn validator(schema: &Value) -> jsonschema::Validator {
        jsonschema::validator_for(schema).expect("the spec's schema compiles")
    }

    /// Errors of `instance` against `schema`, as text.
    pub fn errors(schema: &Value, instance: &Value) -> Vec<String> {
        Self::validator(schema)
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect()
    }
}

// ---------------------------------------------------------------- resources

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn hex_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// A fresh opaque token with Clerk's prefix for `t`, 40 characters after it.
pub fn token(t: TokenType) -> String {
    let prefix = match t {
        TokenType::ApiKey => "ak_",
        TokenType::M2mToken => "mt_",
        TokenType::OAuthToken => "oat_",
        _ => panic!("no opaque tokens for {t}"),
    };
    format!("{prefix}Tk{:038}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

pub fn path_of(t: TokenType) -> &'static str {
    match t {
        TokenType::ApiKey => API_KEYS,
        TokenType::M2mToken => M2M,
        TokenType::OAuthToken => OAUTH,
        _ => panic!("no endpoint for {t}"),
    }
}

/// A valid resource of the verify response for `t`, expiring at `expiration_ms`.
pub fn resource(t: TokenType, expiration_ms: Option<i64>) -> Value {
    let now = now_ms();
    match t {
        TokenType::ApiKey => json!({
            "object": "api_key", "id": hex_id("ak_"), "type": "api_key", "subject": USER,
            "name": "BILLING_SERVICE", "description": null, "claims": {"tier": "gold"},
            "scopes": ["read:invoices", "write:invoices"], "revoked": false, "revocation_reason": null,
            "expired": false, "expiration": expiration_ms, "created_by": USER, "last_used_at": null,
            "created_at": now - 60_000, "updated_at": now - 60_000
        }),
        TokenType::M2mToken => json!({
            "object": "machine_to_machine_token", "id": hex_id("mt_"), "subject": MACHINE,
            "claims": {"region": "eu"}, "scopes": [OTHER_MACHINE], "revoked": false,
            "revocation_reason": null, "expired": false, "expiration": expiration_ms,
            "last_used_at": null, "created_at": now - 60_000, "updated_at": now - 60_000
        }),
        TokenType::OAuthToken => json!({
            "object": "clerk_idp_oauth_access_token", "id": hex_id("oat_"),
            "client_id": "client_2xhFjEI5X2qWRvtV13BzSj8H6Dk", "subject": USER,
            "scopes": ["profile", "email"], "revoked": false, "revocation_reason": null,
            "expired": false, "expiration": expiration_ms, "created_at": now - 60_000,
            "updated_at": now - 60_000
        }),
        _ => panic!("no resource for {t}"),
    }
}

pub fn revoked(mut v: Value) -> Value {
    v["revoked"] = json!(true);
    v["revocation_reason"] = json!("Revoked by user");
    v
}

pub fn expired(mut v: Value) -> Value {
    v["expired"] = json!(true);
    v
}

fn errors_body(message: &str, code: &str) -> Value {
    json!({"errors": [{"message": message, "long_message": message, "code": code}]})
}

// ---------------------------------------------------------------- the double

/// What the double answers for a token.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `200` with this resource (validated against the spec).
    Resource(Value),
    /// `200 {"active": false}` (OAuth only).
    Inactive,
    /// `404` (also the answer for any unregistered token).
    NotFound,
    /// Another status with an `errors` body, and `Retry-After` if given.
    Status(u16, Option<u64>),
    /// Waits, then answers.
    Slow(Duration, Box<Reply>),
    /// A raw, deliberately off-spec body with status 200.
    Raw(String),
}

struct DoubleState {
    spec: Spec,
    machine_secret: Option<String>,
    replies: Mutex<HashMap<String, Reply>>,
    calls: Mutex<HashMap<String, usize>>,
    violations: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct Double {
    pub url: String,
    state: Arc<DoubleState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Double {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct InFlight<'a>(&'a DoubleState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Double {
    pub async fn start() -> Double {
        Self::start_with(None).await
    }

    /// A double that also accepts `MACHINE_SECRET` on the M2M endpoint (as Clerk does).
    pub async fn start_with_machine_secret() -> Double {
        Self::start_with(Some(MACHINE_SECRET.to_owned())).await
    }

    async fn start_with(machine_secret: Option<String>) -> Double {
        let state = Arc::new(DoubleState {
            spec: Spec::load(),
            machine_secret,
            replies: Mutex::default(),
            calls: Mutex::default(),
            violations: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(API_KEYS, post(api_keys))
            .route(M2M, post(m2m))
            .route(OAUTH, post(oauth))
            .route("/v1/jwks", get(jwks))
            .fallback(fallback)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Double { url, state, server }
    }

    pub fn reply(&self, token: &str, reply: Reply) {
        self.state.replies.lock().unwrap().insert(token.to_owned(), reply);
    }

    /// Registers a fresh token of type `t` answered by `reply`.
    pub fn token(&self, t: TokenType, reply: Reply) -> String {
        let token = token(t);
        self.reply(&token, reply);
        token
    }

    /// Calls received on `path`, whatever their outcome.
    pub fn calls(&self, path: &str) -> usize {
        self.state.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state.calls.lock().unwrap().values().sum()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "requests or answers off the spec: {v:#?}");
    }

    /// A configuration for this double: the right secret key, test-sized timeouts, and a call
    /// budget no test reaches unless it sets its own (a development key's default allows 5
    /// calls a second: `runtime/tests/floods.rs` tests the bounds).
    pub fn config(&self) -> ClerkConfig {
        ClerkConfig::new(SECRET)
            .unwrap()
            .with_api_url(&self.url)
            .unwrap()
            .with_timeouts(Duration::from_millis(500), Duration::from_millis(2_000))
            .unwrap()
            .with_call_budget(CallBudget::new(64, Rate::new(10_000, 10_000)))
            .unwrap()
    }

    pub fn verifier(&self) -> Arc<ClerkMachineVerifier> {
        Arc::new(ClerkMachineVerifier::new(self.config()).unwrap())
    }
}

fn violation(state: &DoubleState, what: String) -> Response {
    state.violations.lock().unwrap().push(what.clone());
    (StatusCode::BAD_REQUEST, axum::Json(errors_body(&what, "bad_request"))).into_response()
}

async fn api_keys(State(s): State<Arc<DoubleState>>, headers: HeaderMap, body: Bytes) -> Response {
    verify(&s, API_KEYS, &["secret"], &headers, &body).await
}

async fn m2m(State(s): State<Arc<DoubleState>>, headers: HeaderMap, body: Bytes) -> Response {
    verify(&s, M2M, &["token"], &headers, &body).await
}

async fn oauth(State(s): State<Arc<DoubleState>>, headers: HeaderMap, body: Bytes) -> Response {
    verify(&s, OAUTH, &["access_token", "secret"], &headers, &body).await
}

async fn fallback(State(s): State<Arc<DoubleState>>, method: http::Method, uri: http::Uri) -> Response {
    s.violations
        .lock()
        .unwrap()
        .push(format!("{method} {} is not an endpoint of the spec", uri.path()));
    (
        StatusCode::NOT_FOUND,
        axum::Json(errors_body("not found", "resource_not_found")),
    )
        .into_response()
}

/// Checks `Authorization` and `Clerk-API-Version`; `Some(response)` refuses the request.
fn check_headers(s: &DoubleState, path: &str, headers: &HeaderMap) -> Option<Response> {
    if headers.get("clerk-api-version").and_then(|v| v.to_str().ok()) != Some(VERSION) {
        return Some(violation(s, format!("{path}: missing or wrong Clerk-API-Version")));
    }
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(presented) = auth.and_then(|a| a.strip_prefix("Bearer ")) else {
        return Some(violation(s, format!("{path}: no `Authorization: Bearer` header")));
    };
    let machine_ok = path == M2M && s.machine_secret.as_deref() == Some(presented);
    if presented != SECRET && !machine_ok {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(errors_body("Unauthorized", "authentication_invalid")),
            )
                .into_response(),
        );
    }
    None
}

async fn verify(s: &DoubleState, path: &'static str, fields: &[&str], headers: &HeaderMap, body: &[u8]) -> Response {
    *s.calls.lock().unwrap().entry(path.to_owned()).or_default() += 1;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(s);
    if let Some(refused) = check_headers(s, path, headers) {
        return refused;
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return violation(s, format!("{path}: body is not application/json"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return violation(s, format!("{path}: body is not JSON"));
    };
    let errors = Spec::errors(&s.spec.request_schema(path), &body);
    if !errors.is_empty() {
        return violation(s, format!("{path}: request body off the schema: {errors:?}"));
    }
    let Some(token) = fields.iter().find_map(|f| body.get(*f).and_then(Value::as_str)) else {
        return violation(s, format!("{path}: no token in the body"));
    };
    let reply = s.replies.lock().unwrap().get(token).cloned().unwrap_or(Reply::NotFound);
    answer(s, path, reply).await
}

async fn answer(s: &DoubleState, path: &str, mut reply: Reply) -> Response {
    while let Reply::Slow(delay, then) = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    let (status, body) = match reply {
        Reply::Resource(v) => (StatusCode::OK, v),
        Reply::Inactive => (StatusCode::OK, json!({"active": false})),
        Reply::NotFound => (StatusCode::NOT_FOUND, errors_body("not found", "resource_not_found")),
        Reply::Status(code, retry_after) => {
            let status = StatusCode::from_u16(code).unwrap();
            let mut response = (status, axum::Json(errors_body("failure", "failure"))).into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            return response;
        }
        Reply::Raw(text) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], text).into_response();
        }
        Reply::Slow(..) => unreachable!(),
    };
    let schema = s.spec.response_schema(path, "post", status.as_str());
    let errors = Spec::errors(&schema, &body);
    if !errors.is_empty() {
        s.violations.lock().unwrap().push(format!(
            "{path}: the double's own {status} answer is off the schema: {errors:?}"
        ));
    }
    (status, axum::Json(body)).into_response()
}

/// A JWKS with one RSA public key (the key material is not used: the seam test checks the URL,
/// the headers and the schema).
pub fn jwks_body() -> Value {
    json!({"keys": [{"kid": "ins_test", "alg": "RS256", "use": "sig", "kty": "RSA",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        "e": "AQAB"}]})
}

async fn jwks(State(s): State<Arc<DoubleState>>, headers: HeaderMap) -> Response {
    *s.calls.lock().unwrap().entry("/v1/jwks".to_owned()).or_default() += 1;
    if let Some(refused) = check_headers(&s, "/v1/jwks", &headers) {
        return refused;
    }
    axum::Json(jwks_body()).into_response()
}

// ---------------------------------------------------------------- through a router

/// A router whose `/whoami` accepts the three machine-token types, verified by `verifier`,
/// and answers the verified `Auth` as JSON.
pub fn app(verifier: Arc<ClerkMachineVerifier>) -> Router {
    let gate = TokenGate::builder()
        .verifier_for(ClerkMachineVerifier::token_types(), verifier)
        .build()
        .unwrap();
    let policy = Policy::accepting(TokenTypes::from_slice(&[
        TokenType::ApiKey,
        TokenType::M2mToken,
        TokenType::OAuthToken,
    ]));
    Router::new()
        .route("/whoami", get(|auth: Auth| async move { axum::Json(auth) }))
        .layer(PolicyLayer::new(gate, policy))
}

/// Sends `GET /whoami` with `token`: status, `Retry-After`, JSON body.
pub async fn call(app: &Router, token: &str) -> (StatusCode, Option<String>, Value) {
    use tower::ServiceExt as _;
    let request = http::Request::get("/whoami")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, body)
}

// ---------------------------------------------------------------- logs

/// A tracing writer into memory.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Captures every event at every level, from every crate, process-wide. Call once per
    /// test binary.
    pub fn install_global(&self) {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}
