//! A soak test over loopback: a real axum server on 127.0.0.1 with the real verifiers (a
//! `KeyVerifier` over an SQLite file with a short cache TTL and small caches, a `JwtVerifier`
//! over a loopback JWKS server that rotates its key mid-test), and many concurrent reqwest
//! clients mixing valid keys, valid session tokens, expired, revoked and garbage tokens while
//! keys are created and revoked (in this process and "elsewhere", straight in the store).
//!
//! Bounded: it stops after `DURATION` or `MAX_REQUESTS`, whichever comes first. Every request's
//! expected outcome is tracked precisely (a key revoked while a request was in flight may go
//! either way; before/after it may not), and at the end: nothing valid refused, nothing
//! invalid let through, no request past its timeout, and every cache within its capacity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod jwt_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use jwt_support::{ATTACKER, JwksServer, RSA, RSA2, Rsa, jwks, now};
use serde_json::json;
use tokengate_runtime::jwt::{JwksCache, JwtVerifier, SessionRules, TokenCacheConfig};
use tokengate_runtime::keys::{KeySpec, KeyStore, KeyVerifier, SqliteKeyStore, now_unix};
use tokengate_runtime::{Auth, Guard, Policy, PolicySource, TokenGate, TokenType, TokenTypes};

const DURATION: Duration = Duration::from_secs(8);
const MAX_REQUESTS: usize = 40_000;
const CLIENTS: usize = 24;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const KEY_CACHE_TTL: Duration = Duration::from_millis(400);
const KEY_CACHE_CAPACITY: u64 = 16;
const NEGATIVE_CACHE_CAPACITY: u64 = 32;
const JWT_CACHE_CAPACITY: u64 = 24;

struct Accepting;
impl PolicySource for Accepting {
    fn policy() -> &'static Policy {
        static P: Policy = Policy::accepting(
            TokenTypes::EMPTY
                .with(TokenType::ApiKey)
                .with(TokenType::M2mToken)
                .with(TokenType::SessionToken),
        );
        &P
    }
}

/// A key the clients may use, and what happened to it.
struct KeyState {
    secret: String,
    subject: String,
    expires_at: Option<i64>,
    /// Set just before the revocation starts; (start, end, revoked through the verifier).
    revoked: Option<(Instant, Option<Instant>, bool)>,
}

#[derive(Default)]
struct Shared {
    keys: Mutex<Vec<Arc<Mutex<KeyState>>>>,
    /// 0: only key-1 in the JWKS; 1: key-2 published and seen; 2: key-1 removal published.
    phase: AtomicUsize,
    key1_removed_at: Mutex<Option<Instant>>,
    key1_removal_seen_at: Mutex<Option<Instant>>,
    requests: AtomicUsize,
    stop: AtomicBool,
    seed: AtomicU64,
}

impl Shared {
    fn random(&self) -> u64 {
        // xorshift over a shared state: good enough to mix scenarios.
        let mut x = self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[derive(Debug, Default)]
struct Tally {
    by_kind: HashMap<&'static str, (usize, usize)>,
    failures: Vec<String>,
    slowest: Duration,
}

impl Tally {
    fn record(&mut self, kind: &'static str, passed: bool) {
        let e = self.by_kind.entry(kind).or_default();
        e.0 += 1;
        if passed {
            e.1 += 1;
        }
    }
}

/// What a request must get: `Some(true)` 200, `Some(false)` a 401, `None` either.
type Expect = Option<bool>;

fn unix_f64() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn session_token(key: &Rsa, n: u64, exp_offset: i64) -> String {
    let now = now();
    key.token(&json!({
        "sub": "user_sess", "sid": format!("sess_{n}"), "sts": "active",
        "exp": now + exp_offset, "iat": now - 1, "nbf": now - 1, "jti": format!("jti_{n}"), "v": 2
    }))
}

fn garbage(shared: &Shared) -> String {
    let r = shared.random();
    match r % 4 {
        // A valid checksum over random bits: passes the shape check, unknown to the store.
        0 => tokengate_runtime::keys::Secret::generate(tokengate_runtime::keys::KeyKind::ApiKey)
            .unwrap()
            .expose()
            .to_owned(),
        1 => format!("ak_{r:039}"),
        2 => format!("random{r}"),
        // Valid claims, signed by a key the JWKS never had.
        _ => session_token(&ATTACKER, r, 60),
    }
}

async fn client(shared: Arc<Shared>, url: String, http: reqwest::Client) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.requests.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            break;
        }
        n += 1;
        let choice = shared.random() % 10;
        let mut key_state = None;
        let mut subject = None;
        let (kind, token): (&'static str, String) = match choice {
            0..=3 => {
                let keys = shared.keys.lock().unwrap();
                let k = Arc::clone(&keys[(shared.random() % keys.len() as u64) as usize]);
                drop(keys);
                let (secret, sub) = {
                    let s = k.lock().unwrap();
                    (s.secret.clone(), s.subject.clone())
                };
                key_state = Some(k);
                subject = Some(sub);
                ("key", secret)
            }
            4..=6 => {
                // A fresh, distinct session token: floods the verified-token cache.
                let phase = shared.phase.load(Ordering::SeqCst);
                let key = if phase >= 1 && shared.random().is_multiple_of(2) {
                    &*RSA2
                } else {
                    &*RSA
                };
                subject = Some("user_sess".to_owned());
                let kind = if std::ptr::eq(key, &*RSA) {
                    "session-key1"
                } else {
                    "session-key2"
                };
                (kind, session_token(key, shared.random(), 60))
            }
            7 => ("expired-session", session_token(&RSA, n, -120)),
            _ => ("garbage", garbage(&shared)),
        };
        let start = Instant::now();
        let start_unix = unix_f64();
        let result = http.get(&url).bearer_auth(&token).send().await;
        let end = Instant::now();
        let end_unix = unix_f64();
        tally.slowest = tally.slowest.max(end - start);
        let (status, body) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(e) => {
                tally.failures.push(format!(
                    "{kind}: transport error or timeout after {:?}: {e}",
                    end - start
                ));
                continue;
            }
        };
        let expect: Expect = match kind {
            "key" => {
                let s = key_state.as_ref().unwrap().lock().unwrap();
                let expired_before = s.expires_at.is_some_and(|exp| start_unix >= exp as f64);
                let valid_until_end = s.expires_at.is_none_or(|exp| end_unix < exp as f64);
                match s.revoked {
                    _ if expired_before => Some(false),
                    // Revoked in this process: refused at once.
                    Some((_, Some(done), true)) if done <= start => Some(false),
                    // Revoked elsewhere: refused once the positive cache entry has expired (a
                    // lookup racing with the revocation may cache the key just after it: margin).
                    Some((_, Some(done), false)) if done + KEY_CACHE_TTL + Duration::from_secs(1) <= start => {
                        Some(false)
                    }
                    Some((began, _, _)) if began >= end => valid_until_end.then_some(true),
                    None => valid_until_end.then_some(true),
                    _ => None,
                }
            }
            "session-key1" => {
                let removed = *shared.key1_removed_at.lock().unwrap();
                let seen = *shared.key1_removal_seen_at.lock().unwrap();
                match (removed, seen) {
                    (_, Some(seen)) if seen <= start => Some(false),
                    (Some(removed), _) if removed < end => None,
                    _ => Some(true),
                }
            }
            "session-key2" => Some(true),
            _ => Some(false),
        };
        let passed = status == 200;
        tally.record(kind, passed);
        match expect {
            Some(true) if !passed || Some(body.as_str()) != subject.as_deref() => tally
                .failures
                .push(format!("{kind}: a valid credential refused: {status} {body}")),
            Some(false) if passed || status != 401 => tally
                .failures
                .push(format!("{kind}: an invalid credential got {status} {body}")),
            _ => {}
        }
    }
    tally
}

/// Creates and revokes keys while the clients run: every 40 ms a new key, and a revocation,
/// alternately through the verifier (evicts at once) and straight in the store (as the CLI).
async fn churn(shared: Arc<Shared>, verifier: KeyVerifier, store: Arc<SqliteKeyStore>) {
    let mut i = 1_000u32;
    while !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        i += 1;
        let spec = if i.is_multiple_of(3) {
            KeySpec::m2m_token(format!("mch_{i}"), "soak")
        } else {
            KeySpec::api_key(format!("user_{i}"), "soak")
        };
        let issued = verifier.issue(spec).await.unwrap();
        let subject = issued.record.subject.clone();
        shared.keys.lock().unwrap().push(Arc::new(Mutex::new(KeyState {
            secret: issued.secret.expose().to_owned(),
            subject,
            expires_at: None,
            revoked: None,
        })));
        // Revoke a random key that is not revoked yet (but keep a few alive).
        let target = {
            let keys = shared.keys.lock().unwrap();
            let live: Vec<_> = keys
                .iter()
                .filter(|k| k.lock().unwrap().revoked.is_none())
                .cloned()
                .collect();
            (live.len() > 8).then(|| Arc::clone(&live[(shared.random() % live.len() as u64) as usize]))
        };
        let Some(target) = target else { continue };
        let through_verifier = i.is_multiple_of(2);
        let hash = tokengate_runtime::keys::SecretHash::of(&target.lock().unwrap().secret);
        let id = store.find_by_hash(&hash).await.unwrap().unwrap().id;
        target.lock().unwrap().revoked = Some((Instant::now(), None, through_verifier));
        if through_verifier {
            verifier.revoke(&id, Some("soak")).await.unwrap().unwrap();
        } else {
            store.revoke(&id, Some("soak"), now_unix()).await.unwrap().unwrap();
        }
        let mut state = target.lock().unwrap();
        if let Some(r) = state.revoked.as_mut() {
            r.1 = Some(Instant::now());
        }
    }
}

/// Rotates the JWKS: publishes key-2, waits until the verifier sees it and lets clients use
/// it, then removes key-1 and records when the verifier's keys no longer hold it.
async fn rotate(shared: Arc<Shared>, server: Arc<JwksServer>, cache: JwksCache) {
    tokio::time::sleep(DURATION / 4).await;
    let generation = cache.generation();
    server.set_jwks(jwks(&[RSA.jwk(Some("RS256")), RSA2.jwk(Some("RS256"))]));
    while cache.generation() == generation && !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shared.phase.store(1, Ordering::SeqCst);
    tokio::time::sleep(DURATION / 4).await;
    let generation = cache.generation();
    *shared.key1_removed_at.lock().unwrap() = Some(Instant::now());
    server.set_jwks(jwks(&[RSA2.jwk(Some("RS256"))]));
    shared.phase.store(2, Ordering::SeqCst);
    while cache.generation() == generation && !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if cache.generation() != generation {
        *shared.key1_removal_seen_at.lock().unwrap() = Some(Instant::now());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_traffic_with_churn_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteKeyStore::open(dir.path().join("soak.db")).await.unwrap());
    let keys = KeyVerifier::builder(store.clone())
        .cache_ttl(KEY_CACHE_TTL)
        .negative_cache_ttl(Duration::from_millis(200))
        .cache_capacity(KEY_CACHE_CAPACITY)
        .negative_cache_capacity(NEGATIVE_CACHE_CAPACITY)
        .flush_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let server = Arc::new(JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await);
    let cache = JwksCache::builder(server.url())
        .refresh_interval(Duration::from_millis(300))
        .unknown_kid_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    let jwt = JwtVerifier::builder()
        .jwks(cache.clone())
        .session(SessionRules::new())
        .token_cache(TokenCacheConfig::default().max_entries(JWT_CACHE_CAPACITY))
        .build()
        .unwrap();
    let gate = TokenGate::builder()
        .verifier_for(
            TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken),
            Arc::new(keys.clone()),
        )
        .verifier(TokenType::SessionToken, Arc::new(jwt.clone()))
        .build()
        .unwrap();
    let app =
        Router::new()
            .route(
                "/whoami",
                get(|_g: Guard<Accepting>, auth: Auth| async move {
                    auth.subject.as_deref().unwrap_or_default().to_owned()
                }),
            )
            .with_state(gate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let shared = Arc::new(Shared {
        seed: AtomicU64::new(now_unix().unsigned_abs() | 1),
        ..Shared::default()
    });
    // Starting keys: some forever, some expiring during the run.
    for i in 0..12u64 {
        let mut spec = KeySpec::api_key(format!("user_{i}"), "soak");
        if i.is_multiple_of(4) {
            spec = spec.expires_in(Duration::from_secs(2 + i / 4));
        }
        let issued = keys.issue(spec).await.unwrap();
        shared.keys.lock().unwrap().push(Arc::new(Mutex::new(KeyState {
            secret: issued.secret.expose().to_owned(),
            subject: issued.record.subject.clone(),
            expires_at: issued.record.expires_at,
            revoked: None,
        })));
    }

    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap();
    let started = Instant::now();
    let churner = tokio::spawn(churn(shared.clone(), keys.clone(), store.clone()));
    let rotator = tokio::spawn(rotate(shared.clone(), server.clone(), cache.clone()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(shared.clone(), url.clone(), http.clone())))
        .collect();
    // The bound: whichever of the duration or the request count comes first.
    while started.elapsed() < DURATION && shared.requests.load(Ordering::Relaxed) < MAX_REQUESTS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut total = Tally::default();
    for c in clients {
        let t = tokio::time::timeout(REQUEST_TIMEOUT * 2, c)
            .await
            .expect("a client hung past its timeout")
            .unwrap();
        for (kind, (n, ok)) in t.by_kind {
            let e = total.by_kind.entry(kind).or_default();
            e.0 += n;
            e.1 += ok;
        }
        total.failures.extend(t.failures);
        total.slowest = total.slowest.max(t.slowest);
    }
    churner.await.unwrap();
    rotator.await.unwrap();
    let elapsed = started.elapsed();
    let requests: usize = total.by_kind.values().map(|(n, _)| n).sum();
    eprintln!(
        "soak: {requests} requests in {elapsed:?} by {CLIENTS} clients, slowest {:?}; {:?}",
        total.slowest, total.by_kind
    );
    eprintln!(
        "soak: caches after the flood: keys {} (cap {KEY_CACHE_CAPACITY}), rejections {} (cap {NEGATIVE_CACHE_CAPACITY}), jwt {} (cap {JWT_CACHE_CAPACITY}); {} keys issued",
        keys.cached_keys(),
        keys.cached_rejections(),
        jwt.cached_tokens(),
        shared.keys.lock().unwrap().len()
    );

    assert!(
        total.failures.is_empty(),
        "{} wrong outcomes, e.g.:\n{}",
        total.failures.len(),
        total.failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(total.slowest < REQUEST_TIMEOUT, "slowest request {:?}", total.slowest);
    // The run exercised every scenario, the rotation and the churn.
    for kind in ["key", "session-key1", "session-key2", "expired-session", "garbage"] {
        let (n, _) = total.by_kind.get(kind).copied().unwrap_or_default();
        assert!(n >= 20, "too few {kind} requests: {n}");
    }
    let (keys_sent, keys_passed) = total.by_kind["key"];
    assert!(
        keys_passed > 0 && keys_passed < keys_sent,
        "both valid and revoked/expired keys"
    );
    assert!(
        shared.key1_removal_seen_at.lock().unwrap().is_some(),
        "the rotation completed"
    );
    assert!(
        shared.keys.lock().unwrap().len() > 30,
        "keys were created during the run"
    );
    // Memory stays bounded: each cache holds at most its capacity after the flood of
    // distinct tokens (far more distinct tokens were verified than any capacity).
    assert!(requests > 10 * JWT_CACHE_CAPACITY as usize);
    assert!(keys.cached_keys() <= KEY_CACHE_CAPACITY, "{}", keys.cached_keys());
    assert!(
        keys.cached_rejections() <= NEGATIVE_CACHE_CAPACITY,
        "{}",
        keys.cached_rejections()
    );
    assert!(jwt.cached_tokens() <= JWT_CACHE_CAPACITY, "{}", jwt.cached_tokens());

    // A final burst, faster than the negative TTL: 10x each key cache's capacity in distinct
    // secrets (valid keys for the positive cache, valid-checksum unknown ones for the negative).
    let mut valid = Vec::new();
    for i in 0..10 * KEY_CACHE_CAPACITY {
        valid.push(
            keys.issue(KeySpec::api_key(format!("user_burst{i}"), "burst"))
                .await
                .unwrap(),
        );
    }
    for key in &valid {
        keys.verify_secret(key.secret.expose()).await.unwrap();
    }
    for _ in 0..10 * NEGATIVE_CACHE_CAPACITY {
        let secret = tokengate_runtime::keys::Secret::generate(tokengate_runtime::keys::KeyKind::ApiKey).unwrap();
        assert!(keys.verify_secret(secret.expose()).await.is_err());
    }
    let (cached, rejected) = (keys.cached_keys(), keys.cached_rejections());
    eprintln!(
        "soak: after the burst: keys {cached} (cap {KEY_CACHE_CAPACITY}), rejections {rejected} (cap {NEGATIVE_CACHE_CAPACITY})"
    );
    assert!(cached > 0 && cached <= KEY_CACHE_CAPACITY, "{cached}");
    assert!(rejected > 0 && rejected <= NEGATIVE_CACHE_CAPACITY, "{rejected}");
    serving.abort();
    keys.shutdown().await.unwrap();
}
