//! Floods of tokens nobody knows, each of which would cost a backend call: random opaque
//! strings with introspection on (a loopback authorization server that counts its calls and
//! the calls in flight), random well-shaped `ak_…` keys with Clerk (the Backend API double),
//! and forged checksum-valid API keys (a real SQLite file). Each bound holds, a request over
//! it is a `503` with `Retry-After` (never a `200`, never a `401`), cached tokens keep
//! working during the flood, and one client's flood leaves the other clients their share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod clerk_support;
mod sqlite_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use tokengate_runtime::budget::{CallBudget, Rate};
use tokengate_runtime::clerk::ClerkMachineVerifier;
use tokengate_runtime::introspection::IntrospectionConfig;
use tokengate_runtime::keys::{
    KeyKind, KeyRecord, KeySpec, KeyStore, KeyVerifier, LastUsed, NewKey, Secret, SecretHash, StoreFuture,
};
use tokengate_runtime::net::ClientKey;
use tokengate_runtime::{Auth, IntrospectionVerifier, Policy, PolicyLayer, TokenGate, TokenType, TokenTypes, Verifier};

// ---------------------------------------------------------------- shared

/// Calls in flight at a backend double, and the most seen at once.
#[derive(Default)]
struct Gauge {
    calls: AtomicUsize,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) -> GaugeGuard<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `/whoami` behind `gate`, accepting `types`.
fn app(gate: TokenGate, types: &[TokenType]) -> Router {
    Router::new()
        .route("/whoami", get(|auth: Auth| async move { axum::Json(auth) }))
        .layer(PolicyLayer::new(gate, Policy::accepting(TokenTypes::from_slice(types))))
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40_000))
}

/// `GET /whoami` with `token`, from `from` (as `into_make_service_with_connect_info` tells
/// it): the status and `Retry-After`.
async fn call(app: &Router, token: &str, from: Option<SocketAddr>) -> (StatusCode, Option<u64>) {
    use tower::ServiceExt as _;
    let mut request = http::Request::get("/whoami")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    if let Some(addr) = from {
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status(), retry_after)
}

/// What a flood got back: how many of each status, and whether every 503 said when to retry.
#[derive(Debug, Default)]
struct Tally {
    by_status: HashMap<u16, usize>,
    busy_without_retry_after: usize,
}

impl Tally {
    fn add(&mut self, (status, retry_after): (StatusCode, Option<u64>)) {
        *self.by_status.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_none_or(|s| s < 1) {
            self.busy_without_retry_after += 1;
        }
    }

    fn count(&self, status: u16) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

/// Sends each of `tokens` once from `from`, `at_once` at a time.
async fn flood(app: &Router, tokens: Vec<String>, at_once: usize, from: Option<SocketAddr>) -> Tally {
    let limit = Arc::new(tokio::sync::Semaphore::new(at_once));
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (app, limit) = (app.clone(), limit.clone());
            tokio::spawn(async move {
                let _slot = limit.acquire().await.unwrap();
                call(&app, &token, from).await
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await.unwrap());
    }
    tally
}

/// While `during` runs, `token` is sent again and again from `from`: every answer must be a
/// 200. Returns how many there were.
async fn keeps_working<F: std::future::Future>(
    app: &Router,
    token: &str,
    from: Option<SocketAddr>,
    during: F,
) -> (usize, F::Output) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (app2, token2, stop2) = (app.clone(), token.to_owned(), stop.clone());
    let checker = tokio::spawn(async move {
        let mut ok = 0;
        while !stop2.load(Ordering::SeqCst) {
            let (status, _) = call(&app2, &token2, from).await;
            assert_eq!(status, StatusCode::OK, "a known token was refused during the flood");
            ok += 1;
            tokio::task::yield_now().await;
        }
        ok
    });
    let output = during.await;
    stop.store(true, Ordering::SeqCst);
    (checker.await.unwrap(), output)
}

/// The most calls a token bucket of `rate` lets through in `elapsed`.
fn most_calls(rate: Rate, elapsed: Duration) -> usize {
    rate.burst as usize + (rate.per_second as f64 * elapsed.as_secs_f64()).ceil() as usize
}

fn random_strings(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("flood{}", &Secret::generate(KeyKind::ApiKey).unwrap().expose()[3..]))
        .collect()
}

// ---------------------------------------------------------------- introspection

#[derive(Clone, Default)]
struct AuthServer {
    gauge: Arc<Gauge>,
    per_token: Arc<Mutex<HashMap<String, usize>>>,
}

/// RFC 7662 on loopback: `known-…` tokens are active, everything else inactive; each answer
/// takes 100 ms, so a flood piles up in flight.
async fn introspect(State(server): State<AuthServer>, body: String) -> Response {
    let _in_flight = server.gauge.enter();
    let token = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .unwrap_or_default()
        .to_owned();
    *server.per_token.lock().unwrap().entry(token.clone()).or_default() += 1;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = if token.starts_with("known-") {
        serde_json::json!({"active": true, "sub": "user_1", "exp": tokengate_runtime::keys::now_unix() + 600})
    } else {
        serde_json::json!({"active": false})
    };
    ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
}

async fn auth_server() -> (AuthServer, String) {
    let server = AuthServer::default();
    let router = Router::new()
        .route("/introspect", post(introspect))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (server, url)
}

fn introspection_app(url: &str, budget: CallBudget) -> Router {
    let config = IntrospectionConfig::new(url, "api", "secret").call_budget(budget);
    let gate = TokenGate::builder()
        .verifier(
            TokenType::OAuthToken,
            Arc::new(IntrospectionVerifier::new(config).unwrap()),
        )
        .opaque_oauth_tokens(true)
        .build()
        .unwrap();
    app(gate, &[TokenType::OAuthToken])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_opaque_strings_stay_within_the_introspection_bounds() {
    let (server, url) = auth_server().await;
    let rate = Rate::new(20, 20);
    let app = introspection_app(&url, CallBudget::new(8, rate));
    assert_eq!(call(&app, "known-token", None).await.0, StatusCode::OK);
    let started = Instant::now();
    let (known_ok, tally) = keeps_working(&app, "known-token", None, flood(&app, random_strings(200), 60, None)).await;
    let elapsed = started.elapsed();
    assert!(known_ok > 0);
    assert_eq!(
        server.per_token.lock().unwrap()["known-token"],
        1,
        "the known token came from the cache"
    );
    // Not one random string let through; each either introspected (inactive) or refused.
    assert_eq!(tally.count(200), 0, "{tally:?}");
    assert_eq!(tally.count(401) + tally.count(503), 200, "{tally:?}");
    assert!(tally.count(503) > 0, "the flood went over the bounds: {tally:?}");
    assert_eq!(tally.busy_without_retry_after, 0);
    // 200 strings, 60 at once: at most 8 calls in flight, at most the bucket's worth.
    assert!(server.gauge.max() <= 8, "{} calls in flight", server.gauge.max());
    let calls = server.gauge.calls() - 1;
    assert!(calls <= most_calls(rate, elapsed), "{calls} calls in {elapsed:?}");
    assert_eq!(tally.count(401), calls, "every call answered one string");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_requests_for_one_unknown_token_make_one_call() {
    let (server, url) = auth_server().await;
    let app = introspection_app(&url, CallBudget::new(1, Rate::new(1, 1)));
    let tally = flood(&app, vec!["known-once".to_owned(); 60], 60, None).await;
    assert_eq!(tally.count(200), 60, "{tally:?}");
    assert_eq!(server.gauge.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_clients_flood_leaves_the_others_their_introspection_share() {
    let (server, url) = auth_server().await;
    let share = Rate::new(2, 4);
    let app = introspection_app(&url, CallBudget::new(32, Rate::new(50, 50)).with_per_client(share));
    let started = Instant::now();
    let tally = flood(&app, random_strings(100), 50, Some(peer(1))).await;
    assert!(
        server.gauge.calls() <= most_calls(share, started.elapsed()),
        "{tally:?}"
    );
    assert!(tally.count(503) >= 90, "{tally:?}");
    // Another client's new token is introspected at once.
    assert_eq!(call(&app, "known-other", Some(peer(2))).await.0, StatusCode::OK);
}

// ---------------------------------------------------------------- Clerk

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_clients_flood_of_random_ak_keys_leaves_the_others_their_clerk_share() {
    use clerk_support::{API_KEYS, Double, Reply, resource, token};
    let double = Double::start().await;
    let share = Rate::new(2, 5);
    let config = double
        .config()
        .with_call_budget(CallBudget::new(64, Rate::new(20, 20)).with_per_client(share))
        .unwrap();
    let gate = TokenGate::builder()
        .verifier_for(
            ClerkMachineVerifier::token_types(),
            Arc::new(ClerkMachineVerifier::new(config).unwrap()),
        )
        .build()
        .unwrap();
    let app = app(gate, &[TokenType::ApiKey]);
    let resource = Reply::Resource(resource(TokenType::ApiKey, None));
    let (cached, fresh) = (
        double.token(TokenType::ApiKey, resource.clone()),
        double.token(TokenType::ApiKey, resource),
    );
    assert_eq!(call(&app, &cached, Some(peer(2))).await.0, StatusCode::OK);
    let forged: Vec<String> = (0..150).map(|_| token(TokenType::ApiKey)).collect();
    let started = Instant::now();
    let (_, tally) = keeps_working(&app, &cached, Some(peer(2)), flood(&app, forged, 50, Some(peer(1)))).await;
    let spent = double.calls(API_KEYS) - 1;
    assert!(
        spent <= most_calls(share, started.elapsed()),
        "the flood cost {spent} calls"
    );
    assert_eq!(tally.count(200), 0, "{tally:?}");
    assert_eq!(tally.count(401), spent, "{tally:?}");
    assert_eq!(tally.count(503), 150 - spent, "{tally:?}");
    assert_eq!(tally.busy_without_retry_after, 0);
    // A key never seen before, from another client, is verified: the flood spent only its share.
    assert_eq!(call(&app, &fresh, Some(peer(2))).await.0, StatusCode::OK);
    double.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_client_key_a_flood_spends_the_total_and_gets_503s_not_401s() {
    use clerk_support::{Double, token};
    let double = Double::start().await;
    let rate = Rate::new(5, 5);
    let config = double.config().with_call_budget(CallBudget::new(64, rate)).unwrap();
    let verifier = Arc::new(ClerkMachineVerifier::new(config).unwrap());
    let gate = TokenGate::builder()
        .verifier_for(ClerkMachineVerifier::token_types(), verifier)
        .client_key(|_, _| None)
        .build()
        .unwrap();
    let app = app(gate, &[TokenType::ApiKey]);
    let started = Instant::now();
    let tally = flood(
        &app,
        (0..40).map(|_| token(TokenType::ApiKey)).collect(),
        40,
        Some(peer(1)),
    )
    .await;
    assert!(double.total_calls() <= most_calls(rate, started.elapsed()));
    assert_eq!(tally.count(401) + tally.count(503), 40, "{tally:?}");
    assert!(tally.count(503) >= 30, "{tally:?}");
}

// ---------------------------------------------------------------- forged API keys

/// The real SQLite store, with lookups slowed to 50 ms so a flood piles up, and counted.
struct SlowStore {
    inner: Arc<tokengate_runtime::keys::SqliteKeyStore>,
    finds: Gauge,
}

impl KeyStore for SlowStore {
    fn create(&self, key: NewKey) -> StoreFuture<'_, KeyRecord> {
        self.inner.create(key)
    }
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRecord>> {
        self.inner.get(id)
    }
    fn list<'a>(&'a self, subject: Option<&'a str>) -> StoreFuture<'a, Vec<KeyRecord>> {
        self.inner.list(subject)
    }
    fn revoke<'a>(&'a self, id: &'a str, reason: Option<&'a str>, at: i64) -> StoreFuture<'a, Option<KeyRecord>> {
        self.inner.revoke(id, reason, at)
    }
    fn find_by_hash<'a>(&'a self, hash: &'a SecretHash) -> StoreFuture<'a, Option<KeyRecord>> {
        Box::pin(async move {
            let _in_flight = self.finds.enter();
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.inner.find_by_hash(hash).await
        })
    }
    fn record_last_used<'a>(&'a self, uses: &'a [LastUsed]) -> StoreFuture<'a, ()> {
        self.inner.record_last_used(uses)
    }
}

async fn keys_app(dir: &tempfile::TempDir) -> (Arc<SlowStore>, KeyVerifier, Router) {
    let inner = sqlite_support::open(&sqlite_support::db_path(dir)).await;
    let store = Arc::new(SlowStore {
        inner,
        finds: Gauge::default(),
    });
    let keys = KeyVerifier::builder(store.clone())
        .max_lookups_in_flight(8)
        .max_lookups_in_flight_per_client(Some(4))
        .build()
        .unwrap();
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, Arc::new(keys.clone()))
        .build()
        .unwrap();
    (store, keys, app(gate, &[TokenType::ApiKey]))
}

fn forged(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| Secret::generate(KeyKind::ApiKey).unwrap().expose().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_keys_cannot_queue_the_store_and_legitimate_keys_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, keys, app) = keys_app(&dir).await;
    let cached = keys.issue(KeySpec::api_key("user_cached", "cached")).await.unwrap();
    let fresh = keys.issue(KeySpec::api_key("user_fresh", "fresh")).await.unwrap();
    let (cached, fresh) = (cached.secret.expose().to_owned(), fresh.secret.expose().to_owned());
    assert_eq!(call(&app, &cached, Some(peer(2))).await.0, StatusCode::OK);
    let finds_before = store.finds.calls();

    // Client 1 floods with 300 forged keys, 100 at once; client 2 keeps using its cached key.
    let flood_of_forged = async {
        let tally = flood(&app, forged(300), 100, Some(peer(1))).await;
        // Meanwhile (right after) client 2's key nobody has seen yet is verified.
        (tally, call(&app, &fresh, Some(peer(2))).await)
    };
    let started = Instant::now();
    let (cached_ok, (tally, fresh_answer)) = keeps_working(&app, &cached, Some(peer(2)), flood_of_forged).await;
    assert_eq!(fresh_answer.0, StatusCode::OK);
    assert!(cached_ok > 0);
    // The cached key never reached the store; every store query answered one forged key.
    let flood_finds = store.finds.calls() - finds_before - 1;
    assert_eq!(tally.count(401), flood_finds, "{tally:?}");
    assert!(
        store.finds.max() <= 4,
        "{} lookups in flight for one client",
        store.finds.max()
    );
    assert_eq!(tally.count(200), 0, "{tally:?}");
    assert_eq!(tally.count(401) + tally.count(503), 300, "{tally:?}");
    assert!(tally.count(503) > 0, "{tally:?}");
    assert_eq!(tally.busy_without_retry_after, 0);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(keys.lookup_places_free(), 8, "every place was given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_key_is_one_store_query_however_often_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _keys, app) = keys_app(&dir).await;
    let key = forged(1).remove(0);
    for _ in 0..20 {
        assert_eq!(call(&app, &key, Some(peer(1))).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(store.finds.calls(), 1, "the refusal is remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_keys_from_clients_the_gate_cannot_tell_apart_are_held_to_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _keys, app) = keys_app(&dir).await;
    let tally = flood(&app, forged(100), 100, None).await;
    assert!(store.finds.max() <= 8, "{} lookups in flight", store.finds.max());
    assert!(store.finds.max() > 4, "no per-client share without a client key");
    assert_eq!(tally.count(401) + tally.count(503), 100, "{tally:?}");
}

// ---------------------------------------------------------------- the client key

/// Records the client of every credential it is asked about.
#[derive(Default)]
struct Recording(Mutex<Vec<Option<ClientKey>>>);

impl Verifier for Recording {
    fn verify<'a>(
        &'a self,
        credential: tokengate_runtime::Credential<'a>,
    ) -> tokengate_runtime::verifier::VerifyFuture<'a> {
        self.0.lock().unwrap().push(credential.client());
        let info = tokengate_runtime::AuthInfo::new(TokenType::ApiKey);
        Box::pin(std::future::ready(Ok(Auth::new(info))))
    }
}

#[tokio::test]
async fn the_gate_names_the_peer_or_the_applications_own_client_key() {
    let recording = Arc::new(Recording::default());
    let gate = |builder: tokengate_runtime::TokenGateBuilder| {
        builder.verifier(TokenType::ApiKey, recording.clone()).build().unwrap()
    };
    let by_peer = app(gate(TokenGate::builder()), &[TokenType::ApiKey]);
    call(&by_peer, "ak_anything", Some(peer(7))).await;
    call(&by_peer, "ak_anything", None).await;
    let by_header = app(
        gate(
            TokenGate::builder()
                .client_key(|headers, _| Some(ClientKey::from_name(headers.get(header::AUTHORIZATION)?.as_bytes()))),
        ),
        &[TokenType::ApiKey],
    );
    call(&by_header, "ak_anything", Some(peer(7))).await;
    assert_eq!(
        *recording.0.lock().unwrap(),
        [
            Some(ClientKey::from_ip(peer(7).ip())),
            None,
            Some(ClientKey::from_name(b"Bearer ak_anything")),
        ]
    );
}
