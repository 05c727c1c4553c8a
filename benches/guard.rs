//! What a guard adds to a request, in process: an axum `Router` called with
//! `tower::ServiceExt::oneshot`, a fresh request each iteration, the same handler unguarded and
//! guarded by `#[accepts_token(api_key)]` (a cached key from a real SQLite store),
//! `#[accepts_token(session_token)]` (RS256, verified-token cache off and on) and a three-type
//! policy with a scope check. Then the rejections that must stay cheap (garbage, a token of a
//! type the route does not accept, an API key with a bad checksum), through the router and
//! through `TokenGate::authorize` alone. Last, the cached API key with the CPU's caches
//! emptied before each request (`cold/…`), which is how a server under load runs it, and
//! while another thread checks the same key in a loop (`contended/…`), as two workers of a
//! server do for one busy client. `request_prometheus/…`: the unguarded route and the cached
//! API key with the Prometheus exporter's recorder installed (the `metrics` feature).
//! `dpop/…`: a reused OAuth token as a bearer token, and DPoP-bound with a fresh proof.
//!
//! Run: `cargo bench --bench guard -- --warm-up-time 1 --measurement-time 3`.
//! Figures from this machine and what they mean: `BENCHMARKS.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Extensions, HeaderMap, HeaderValue, Request, StatusCode, header};
use serde_json::json;
use tokengate::jwt::{JwtVerifier, KeySet, SessionRules, TokenCacheConfig};
use tokengate::keys::{KeySpec, KeyVerifier, SqliteKeyStore};
use tokengate::verifier::{Credential, Verifier};
use tokengate::{Policy, TokenGate, TokenType, TokenTypes, accepts_token, require_scope};
use tower::ServiceExt as _;

/// The handler body, identical in every route.
async fn unguarded() -> &'static str {
    "ok"
}

#[accepts_token(api_key)]
async fn api_key_only() -> &'static str {
    "ok"
}

/// The same guard on a handler that reads the caller: the guard shares the `Auth` with it.
#[accepts_token(api_key)]
async fn api_key_with_auth(auth: tokengate::Auth) -> &'static str {
    black_box(auth);
    "ok"
}

#[accepts_token(session_token)]
async fn session_only() -> &'static str {
    "ok"
}

#[accepts_token(session_token, oauth_token, api_key)]
#[require_scope(api_key: "write:users")]
async fn three_types() -> &'static str {
    "ok"
}

/// Polls a future that must complete without waiting (cached and rejected paths).
fn now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("this path must not wait"),
    }
}

/// An RSA key pair (PKCS#8 private PEM, SPKI public PEM), as tests/api_server.rs makes them.
fn rsa_pems() -> (String, String) {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let private: Pkcs8V1Der<'_> = pair.as_der().unwrap();
    let public: PublicKeyX509Der<'_> = pair.public_key().as_der().unwrap();
    (
        pem::encode(&pem::Pem::new("PRIVATE KEY", private.as_ref().to_vec())),
        pem::encode(&pem::Pem::new("PUBLIC KEY", public.as_ref().to_vec())),
    )
}

/// A Clerk-shaped session token signed with `private_pem`.
fn session_token(private_pem: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "azp": "https://app.example.com", "exp": now + 3600, "iat": now, "nbf": now - 10,
        "iss": "https://clerk.example.com", "sid": "sess_2abcdefghijklmnopqrstuvwxyz", "sts": "active",
        "sub": "user_2abcdefghijklmnopqrstuvwxyz", "v": 2,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("ins_bench".to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn jwt_verifier(public_pem: &str, cache: TokenCacheConfig) -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_pem(public_pem).unwrap())
        .session(SessionRules::new().authorized_parties(["https://app.example.com"]))
        .token_cache(cache)
        .build()
        .unwrap()
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    /// Session verifier with the verified-token cache disabled.
    app_uncached: Router,
    /// Session verifier with the verified-token cache enabled (the default).
    app_cached: Router,
    gate: TokenGate,
    keys: Arc<KeyVerifier>,
    api_key: String,
    bad_checksum: String,
    token: String,
}

fn router(gate: TokenGate) -> Router {
    Router::<TokenGate>::new()
        .route("/open", get(unguarded))
        .route("/api_key", get(api_key_only))
        .route("/api_key_auth", get(api_key_with_auth))
        .route("/session", get(session_only))
        .route("/three", get(three_types))
        .with_state(gate)
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (keys, api_key) = rt.block_on(async {
        let store = Arc::new(SqliteKeyStore::open(dir.path().join("bench.db")).await.unwrap());
        let keys = Arc::new(
            KeyVerifier::builder(store)
                .flush_interval(Duration::from_secs(3600))
                // Longer than any run: the `now` benches must never find the key expired.
                .cache_ttl(Duration::from_secs(3600))
                .build()
                .unwrap(),
        );
        let issued = keys
            .issue(KeySpec::api_key("user_bench", "bench").scope("write:users"))
            .await
            .unwrap();
        let secret = issued.secret.expose().to_owned();
        // Verified once: every request below finds it in the cache.
        keys.verify(Credential::new_for_tests(&secret, TokenType::ApiKey))
            .await
            .unwrap();
        (keys, secret)
    });
    let mut typo = api_key.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let bad_checksum = String::from_utf8(typo).unwrap();

    let (private_pem, public_pem) = rsa_pems();
    let token = session_token(&private_pem);
    let session = Arc::new(jwt_verifier(&public_pem, TokenCacheConfig::default()));
    let session_uncached = Arc::new(jwt_verifier(&public_pem, TokenCacheConfig::disabled()));
    let build = |session: Arc<dyn Verifier>| {
        TokenGate::builder()
            .verifier(TokenType::ApiKey, keys.clone())
            .verifier(TokenType::SessionToken, session.clone())
            // OAuth: the three-type policy needs a verifier; it is never called here.
            .verifier(TokenType::OAuthToken, session)
            .build()
            .unwrap()
    };
    let gate = build(session.clone());
    let uncached_gate = build(session_uncached);
    Fixture {
        rt,
        _dir: dir,
        app_uncached: router(uncached_gate),
        app_cached: router(gate.clone()),
        gate,
        keys,
        api_key,
        bad_checksum,
        token,
    }
}

fn request(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

/// One request through `app`; the status it answered.
fn call(f: &Fixture, app: &Router, path: &str, token: Option<&str>) -> StatusCode {
    let response = f.rt.block_on(app.clone().oneshot(request(path, token))).unwrap();
    response.status()
}

fn guarded_requests(c: &mut Criterion) {
    let f = fixture();
    let (api_key, token) = (f.api_key.as_str(), f.token.as_str());
    // Every case must answer what it claims, or the comparison means nothing.
    for (app, path, token) in [
        (&f.app_cached, "/open", None),
        (&f.app_cached, "/api_key", Some(api_key)),
        (&f.app_cached, "/api_key_auth", Some(api_key)),
        (&f.app_uncached, "/session", Some(token)),
        (&f.app_cached, "/session", Some(token)),
        (&f.app_cached, "/three", Some(api_key)),
        (&f.app_cached, "/three", Some(token)),
    ] {
        assert_eq!(call(&f, app, path, token), StatusCode::OK, "{path}");
    }

    let mut group = c.benchmark_group("request");
    group.bench_function("unguarded", |b| {
        b.iter(|| call(&f, &f.app_cached, black_box("/open"), None))
    });
    group.bench_function("api_key_cached", |b| {
        b.iter(|| call(&f, &f.app_cached, "/api_key", Some(black_box(api_key))))
    });
    group.bench_function("api_key_cached_auth_argument", |b| {
        b.iter(|| call(&f, &f.app_cached, "/api_key_auth", Some(black_box(api_key))))
    });
    group.bench_function("session_rs256_cache_off", |b| {
        b.iter(|| call(&f, &f.app_uncached, "/session", Some(black_box(token))))
    });
    group.bench_function("session_rs256_cache_on", |b| {
        b.iter(|| call(&f, &f.app_cached, "/session", Some(black_box(token))))
    });
    group.bench_function("three_types_scope_api_key", |b| {
        b.iter(|| call(&f, &f.app_cached, "/three", Some(black_box(api_key))))
    });
    group.bench_function("three_types_scope_session_cache_on", |b| {
        b.iter(|| call(&f, &f.app_cached, "/three", Some(black_box(token))))
    });
    group.finish();

    // The same two routes with the Prometheus exporter's recorder installed (for this thread:
    // the other groups measure without it). Every request through `/api_key` records its
    // decision and a cache hit; `/open` records nothing.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    {
        let _local = metrics::set_default_local_recorder(&recorder);
        assert_eq!(call(&f, &f.app_cached, "/api_key", Some(api_key)), StatusCode::OK);
        assert!(
            prometheus.render().contains(r#"outcome="allowed""#) || !cfg!(feature = "metrics"),
            "the recorder sees the decisions"
        );
        let mut group = c.benchmark_group("request_prometheus");
        group.bench_function("unguarded", |b| {
            b.iter(|| call(&f, &f.app_cached, black_box("/open"), None))
        });
        group.bench_function("api_key_cached", |b| {
            b.iter(|| call(&f, &f.app_cached, "/api_key", Some(black_box(api_key))))
        });
        group.finish();
    }

    // The guard alone, without the router: `TokenGate::authorize` on an accepted token.
    let api_key_policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::ApiKey]));
    let session_policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::SessionToken]));
    let extensions = Extensions::new();
    let mut group = c.benchmark_group("authorize");
    for (name, token, policy) in [
        ("api_key_cached", api_key, &api_key_policy),
        ("session_cache_on", token, &session_policy),
    ] {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert!(now(f.gate.authorize(&h, &extensions, policy)).is_ok(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| black_box(now(f.gate.authorize(black_box(&h), &extensions, policy)).unwrap()))
        });
    }
    group.finish();
}

fn rejections(c: &mut Criterion) {
    let f = fixture();
    let (garbage, token, bad) = ("garbage", f.token.as_str(), f.bad_checksum.as_str());
    assert_eq!(
        call(&f, &f.app_cached, "/api_key", Some(garbage)),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&f, &f.app_cached, "/api_key", Some(token)),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(&f, &f.app_cached, "/api_key", Some(bad)), StatusCode::UNAUTHORIZED);

    let api_key_policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::ApiKey]));
    let headers = |token: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    };
    let extensions = Extensions::new();
    let reason = |token: &str| {
        now(f.gate.authorize(&headers(token), &extensions, &api_key_policy))
            .unwrap_err()
            .reason()
    };
    assert_eq!(reason(garbage), "malformed-token");
    assert_eq!(reason(token), "token-type-mismatch");
    assert_eq!(reason(bad), "bad-checksum");

    let mut group = c.benchmark_group("reject");
    for (name, token) in [
        ("garbage", garbage),
        ("wrong_type_session_jwt", token),
        ("bad_checksum", bad),
    ] {
        let h = headers(token);
        // Once before measuring, so the checks below hold even when a filter skips the benches.
        assert!(now(f.gate.authorize(&h, &extensions, &api_key_policy)).is_err());
        assert_eq!(
            call(&f, &f.app_cached, "/api_key", Some(token)),
            StatusCode::UNAUTHORIZED
        );
        group.bench_function(format!("authorize/{name}"), |b| {
            b.iter(|| {
                let result = now(f.gate.authorize(black_box(&h), &extensions, &api_key_policy));
                black_box(result.unwrap_err())
            })
        });
        group.bench_function(format!("router/{name}"), |b| {
            b.iter(|| call(&f, &f.app_cached, "/api_key", Some(black_box(token))))
        });
    }
    group.finish();
}

/// Writes one byte in every cache line of a buffer twice the size of this machine's L2 cache
/// (512 KB per core), so the code and data of whatever runs next come from the shared L3
/// cache: roughly what a server under load finds after the kernel's network work for other
/// connections ran between two of its requests.
fn evict_caches() {
    const BYTES: usize = 1 << 20;
    thread_local!(static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; BYTES]));
    BUFFER.with_borrow_mut(|buffer| {
        for line in buffer.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&buffer[..]);
    });
}

/// The guard with the CPU's private caches emptied before each request: what it costs a server
/// under load, where `bench/load.sh` measures it, reproduced in process. Both routes get the
/// same `Authorization` header, so the guard is the only difference; the request is built
/// after the eviction, as a server parses it just before its handler runs.
fn cold(c: &mut Criterion) {
    let f = fixture();
    let api_key = f.api_key.as_str();
    let mut group = c.benchmark_group("cold");
    for (name, path) in [("unguarded", "/open"), ("api_key_cached", "/api_key")] {
        assert_eq!(call(&f, &f.app_cached, path, Some(api_key)), StatusCode::OK, "{path}");
        group.bench_function(format!("request/{name}"), |b| {
            b.iter_batched(
                || {
                    evict_caches();
                    (f.app_cached.clone(), request(path, Some(api_key)))
                },
                |(app, request)| f.rt.block_on(app.oneshot(request)).unwrap().status(),
                BatchSize::PerIteration,
            )
        });
    }
    let policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::ApiKey]));
    let extensions = Extensions::new();
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {api_key}")).unwrap(),
    );
    assert!(now(f.gate.authorize(&h, &extensions, &policy)).is_ok());
    group.bench_function("authorize/api_key_cached", |b| {
        b.iter_batched(
            evict_caches,
            |()| now(f.gate.authorize(black_box(&h), &extensions, &policy)).is_ok(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// `authorize` with the same key while another thread runs it in a loop: two Tokio workers of
/// a loaded server serving one client's key, each writing whatever the other reads.
fn contended(c: &mut Criterion) {
    let f = fixture();
    let policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::ApiKey]));
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", f.api_key)).unwrap(),
    );
    let extensions = Extensions::new();
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, f.keys.clone())
        .build()
        .unwrap();
    assert!(now(gate.authorize(&h, &extensions, &policy)).is_ok());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = std::thread::spawn({
        let (gate, h, policy, stop) = (gate.clone(), h.clone(), policy.clone(), stop.clone());
        move || {
            let extensions = Extensions::new();
            while !stop.load(Ordering::Relaxed) {
                assert!(now(gate.authorize(black_box(&h), &extensions, &policy)).is_ok());
            }
        }
    });
    let mut group = c.benchmark_group("contended");
    group.bench_function("authorize/api_key_cached", |b| {
        b.iter(|| now(gate.authorize(black_box(&h), &extensions, &policy)).is_ok())
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

/// An RFC 9068 access token signed with `private_pem`, bound to the DPoP key `jkt` if given.
fn oauth_token(private_pem: &str, jkt: Option<&str>) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({
        "iss": "https://auth.example.com", "aud": "https://api.example.com", "sub": "user_2abc",
        "client_id": "client_1", "jti": "at-1", "iat": now, "exp": now + 3600, "scope": "pay",
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The head of `POST https://api.example.com/api/transfers` with `authorization` and a proof.
fn transfer_head(authorization: &str, proof: Option<&str>) -> http::request::Parts {
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/transfers")
        .header(header::AUTHORIZATION, authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.body(()).unwrap().into_parts().0
}

/// DPoP (RFC 9449): what a proof adds to a reused OAuth access token (the verified-token
/// cache answers for the token itself), through `TokenGate::authorize_request`: the same
/// token unbound as a bearer token, then bound with a fresh ES256 proof per request (made
/// outside the measurement); and the proof's checks alone (`DpopVerifier::check` and the
/// replay cache's insert, a `std::sync::Mutex` shard held for one map operation, never
/// across an `.await`).
fn sender_constrained(c: &mut Criterion) {
    use tokengate::binding::proof::DpopKey;
    use tokengate::binding::{DpopConfig, DpopVerifier, ProofTarget};
    use tokengate::jwt::OAuthRules;
    const URL: &str = "https://api.example.com/api/transfers";
    let (private, public) = rsa_pems();
    let verifier = JwtVerifier::builder()
        .keys(KeySet::from_pem(&public).unwrap())
        .oauth(OAuthRules::new("https://auth.example.com", ["https://api.example.com"]))
        .build()
        .unwrap();
    // Room for every proof the run makes: none leaves its 60 s window during it.
    let config = || {
        DpopConfig::new("https://api.example.com")
            .unwrap()
            .replay_capacity(1 << 20)
            .unwrap()
    };
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, Arc::new(verifier))
        .dpop(DpopVerifier::new(config()))
        .build()
        .unwrap();
    let key = DpopKey::generate().unwrap();
    let unbound = oauth_token(&private, None);
    let bound = oauth_token(&private, Some(&key.thumbprint()));
    let policy = Policy::accepting(TokenTypes::from_slice(&[TokenType::OAuthToken]));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let bearer = transfer_head(&format!("Bearer {unbound}"), None);
    let dpop_auth = format!("DPoP {bound}");
    let with_proof = || {
        let proof = key.proof("POST", URL, Some(&bound), None).unwrap();
        transfer_head(&dpop_auth, Some(&proof))
    };
    // Both tokens verified once, so the cache answers for them below.
    rt.block_on(gate.authorize_request(&bearer, &policy)).unwrap();
    rt.block_on(gate.authorize_request(&with_proof(), &policy)).unwrap();

    let mut group = c.benchmark_group("dpop");
    group.bench_function("authorize/oauth_bearer_cached", |b| {
        b.iter(|| now(gate.authorize_request(black_box(&bearer), &policy)).is_ok())
    });
    group.bench_function("authorize/oauth_dpop_cached_with_proof", |b| {
        b.iter_batched(
            with_proof,
            |head| now(gate.authorize_request(black_box(&head), &policy)).is_ok(),
            BatchSize::SmallInput,
        )
    });
    let dpop = DpopVerifier::new(config());
    let jkt = key.thumbprint();
    let uri: http::Uri = "/api/transfers".parse().unwrap();
    group.bench_function("check_proof_and_remember", |b| {
        b.iter_batched(
            with_proof,
            |head| {
                let target = ProofTarget {
                    method: &head.method,
                    uri: &uri,
                };
                let checked = dpop.check(black_box(&head.headers), target, &bound, &jkt).unwrap();
                dpop.remember(&checked).is_ok()
            },
            BatchSize::SmallInput,
        )
    });
    // The one signature check a proof adds, alone: aws-lc-rs's P-256 verification.
    let proof = key.proof("POST", URL, Some(&bound), None).unwrap();
    let (signed, signature) = proof.rsplit_once('.').unwrap();
    let signature = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
    };
    let point = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwk = key.public_jwk();
        let mut point = vec![4u8];
        point.extend(b64.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(b64.decode(jwk["y"].as_str().unwrap()).unwrap());
        point
    };
    group.bench_function("es256_verify_alone", |b| {
        b.iter(|| {
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(black_box(signed.as_bytes()), &signature)
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    guarded_requests,
    rejections,
    cold,
    contended,
    sender_constrained
);
criterion_main!(benches);
