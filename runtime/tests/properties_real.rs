//! Property tests against the REAL verifiers: a `KeyVerifier` over an SQLite file and a
//! `JwtVerifier` with an RSA key generated for the test. Whatever arrives — arbitrary
//! `ak_`/`mt_`/`oat_` strings (valid-checksum random secrets included), JWT-shaped strings
//! with hostile headers (`alg` none/HS256/…, `kid` tricks, `jku`, `crit`) and valid claims
//! under a wrong signature, arbitrary header and cookie bytes — the guard answers 400/401/403,
//! never panics, never lets it through, and never calls a verifier for a token type the
//! route does not accept (every route has its own gate with counting wrappers, so the counts
//! of the types a route refuses must stay zero whatever the other tests do in parallel).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod jwt_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderValue, Request, header};
use jwt_support::{ATTACKER, RSA, b64, now, session_claims};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokengate_runtime::jwt::{JwtVerifier, KeySet, OAuthRules, SessionRules};
use tokengate_runtime::keys::{KeySpec, KeyVerifier, SqliteKeyStore};
use tokengate_runtime::verifier::{Credential, VerifyFuture};
use tokengate_runtime::{Guard, Policy, PolicySource, TokenGate, TokenType, TokenTypes, Verifier};
use tower::ServiceExt as _;

/// A real verifier that counts its calls.
struct Counting {
    inner: Arc<dyn Verifier>,
    calls: AtomicUsize,
}

impl Counting {
    fn new(inner: Arc<dyn Verifier>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Verifier for Counting {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(credential)
    }
}

macro_rules! policy {
    ($name:ident, $types:expr) => {
        struct $name;
        impl PolicySource for $name {
            fn policy() -> &'static Policy {
                static P: Policy = Policy::accepting($types);
                &P
            }
        }
    };
}

policy!(KeysOnly, TokenTypes::EMPTY.with(TokenType::ApiKey));
policy!(SessionsOnly, TokenTypes::EMPTY.with(TokenType::SessionToken));
policy!(M2mOnly, TokenTypes::EMPTY.with(TokenType::M2mToken));

/// One route's gate: a counting wrapper per token type, around the shared real verifiers.
struct RouteGate {
    accepts: TokenTypes,
    counters: [Arc<Counting>; 4],
}

impl RouteGate {
    fn foreign_calls(&self) -> usize {
        TokenType::ALL
            .into_iter()
            .zip(&self.counters)
            .filter(|(t, _)| !self.accepts.contains(*t))
            .map(|(_, c)| c.calls())
            .sum()
    }
}

struct Fixture {
    router: Router,
    routes: Vec<RouteGate>,
    valid_key: String,
    valid_m2m: String,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (keys, valid_key, valid_m2m) = runtime.block_on(async {
        let store = Arc::new(SqliteKeyStore::open(dir.path().join("keys.db")).await.unwrap());
        let keys = KeyVerifier::new(store);
        let key = keys.issue(KeySpec::api_key("user_1", "prop")).await.unwrap();
        let m2m = keys.issue(KeySpec::m2m_token("mch_1", "prop")).await.unwrap();
        (keys, key.secret.expose().to_owned(), m2m.secret.expose().to_owned())
    });
    let sessions = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .session(SessionRules::new())
        .build()
        .unwrap();
    let oauth = JwtVerifier::builder()
        .keys(KeySet::from_pem(&RSA.public_pem()).unwrap())
        .oauth(OAuthRules::new(
            "https://issuer.example.com",
            ["https://api.example.com"],
        ))
        .build()
        .unwrap();
    let keys: Arc<dyn Verifier> = Arc::new(keys);
    let real: [Arc<dyn Verifier>; 4] = TokenType::ALL.map(|t| match t {
        TokenType::SessionToken => Arc::new(sessions.clone()) as Arc<dyn Verifier>,
        TokenType::OAuthToken => Arc::new(oauth.clone()),
        TokenType::ApiKey | TokenType::M2mToken => keys.clone(),
    });
    let mut routes = Vec::new();
    let mut router = Router::new();
    for (path, accepts) in [
        ("/keys", KeysOnly::policy().accepts()),
        ("/sessions", SessionsOnly::policy().accepts()),
        ("/m2m", M2mOnly::policy().accepts()),
    ] {
        let counters = real.clone().map(Counting::new);
        let mut builder = TokenGate::builder().opaque_oauth_tokens(true);
        for (t, c) in TokenType::ALL.into_iter().zip(&counters) {
            builder = builder.verifier(t, c.clone());
        }
        let gate = builder.build().unwrap();
        let route = match path {
            "/keys" => Router::new().route(path, get(|_g: Guard<KeysOnly>| async { "through" })),
            "/sessions" => Router::new().route(path, get(|_g: Guard<SessionsOnly>| async { "through" })),
            _ => Router::new().route(path, get(|_g: Guard<M2mOnly>| async { "through" })),
        };
        router = router.merge(route.with_state(gate));
        routes.push(RouteGate { accepts, counters });
    }
    Fixture {
        router,
        routes,
        valid_key,
        valid_m2m,
        runtime,
        _dir: dir,
    }
}

const PATHS: [&str; 3] = ["/keys", "/sessions", "/m2m"];

fn status_of(path: &str, name: header::HeaderName, value: &[u8]) -> Option<u16> {
    let f = fixture();
    let value = HeaderValue::from_bytes(value).ok()?;
    let request = Request::get(path).header(name, value).body(Body::empty()).unwrap();
    let response = f.runtime.block_on(f.router.clone().oneshot(request)).unwrap();
    Some(response.status().as_u16())
}

/// Sends `value` in `name` to every route: refused everywhere, no foreign verifier called.
fn refused_everywhere(name: header::HeaderName, value: &[u8]) -> Result<(), TestCaseError> {
    for path in PATHS {
        if let Some(status) = status_of(path, name.clone(), value) {
            prop_assert!(matches!(status, 400 | 401 | 403), "{path}: status {status}");
        }
    }
    for (path, route) in PATHS.iter().zip(&fixture().routes) {
        prop_assert_eq!(
            route.foreign_calls(),
            0,
            "{} called a verifier for a type it refuses",
            path
        );
    }
    Ok(())
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

// The secret format's checksum, recomputed here so the strategy can produce secrets that
// pass it: a CRC-32 of prefix + random part, in 6 base62 characters.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn with_checksum(payload: &str) -> String {
    let mut crc = crc32(payload.as_bytes());
    let mut sum = [b'0'; 6];
    for slot in sum.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    format!("{payload}{}", std::str::from_utf8(&sum).unwrap())
}

fn prefixed() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![Just("ak_"), Just("mt_"), Just("oat_")];
    prop_oneof![
        // Anything after a prefix.
        (prefix.clone(), "[A-Za-z0-9_~+/.-]{0,120}").prop_map(|(p, r)| format!("{p}{r}")),
        // The right length and alphabet, checksum almost surely wrong.
        (prefix.clone(), "[A-Za-z0-9]{39}").prop_map(|(p, r)| format!("{p}{r}")),
        // A valid checksum over random bits: passes the shape check, unknown to the store.
        (prop_oneof![Just("ak_"), Just("mt_")], "[A-Za-z0-9]{33}").prop_map(|(p, r)| with_checksum(&format!("{p}{r}"))),
    ]
}

/// A header object: hostile algorithms, `kid` tricks, key-carrying headers, `crit`.
fn header_json() -> impl Strategy<Value = Value> {
    let alg = prop_oneof![
        Just(json!("RS256")),
        Just(json!("none")),
        Just(json!("None")),
        Just(json!("HS256")),
        Just(json!("ES256")),
        Just(json!("PS256")),
        Just(json!("RS512")),
        Just(json!(null)),
        Just(json!(["RS256"])),
        "[A-Za-z0-9]{0,8}".prop_map(Value::from),
    ];
    let kid = prop_oneof![
        Just(None),
        Just(Some(json!("key-1"))),
        Just(Some(json!("attacker"))),
        Just(Some(json!("../../../../dev/null"))),
        Just(Some(json!("x".repeat(5000)))),
        Just(Some(json!(1))),
        "\\PC{0,16}".prop_map(|s| Some(Value::from(s))),
    ];
    let typ = prop_oneof![Just(None), Just(Some("JWT")), Just(Some("at+jwt")), Just(Some("jwt+x"))];
    let extra = prop_oneof![
        Just(None),
        Just(Some(("jku", json!("http://127.0.0.1:1/jwks")))),
        Just(Some(("jwk", ATTACKER.jwk(Some("RS256"))))),
        Just(Some(("x5u", json!("http://127.0.0.1:1/cert")))),
        Just(Some(("crit", json!(["exp"])))),
    ];
    (alg, kid, typ, extra).prop_map(|(alg, kid, typ, extra)| {
        let mut h = json!({ "alg": alg });
        if let Some(kid) = kid {
            h["kid"] = kid;
        }
        if let Some(typ) = typ {
            h["typ"] = json!(typ);
        }
        if let Some((name, value)) = extra {
            h[name] = value;
        }
        h
    })
}

/// Payloads: valid session claims (so only the signature is wrong), mangled ones, junk.
fn payload_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(session_claims().to_string()),
        Just({
            let mut c = session_claims();
            c["sub"] = json!("mch_1");
            c.to_string()
        }),
        Just({
            let mut c = session_claims();
            c["exp"] = json!(now() + 100_000_000);
            c["iss"] = json!("https://issuer.example.com");
            c["aud"] = json!("https://api.example.com");
            c["client_id"] = json!("client");
            c.to_string()
        }),
        Just(r#"{"sub":["user_1"],"exp":"soon"}"#.to_owned()),
        "\\PC{0,64}",
    ]
}

/// How the signature segment is made; none of them is the real key over this exact message.
#[derive(Clone, Debug)]
enum Signing {
    Empty,
    Random(Vec<u8>),
    /// A real signature, by the real key, over another message.
    Transplanted,
    /// The attacker's own RSA key over this exact message.
    Attacker,
    /// HMAC with the real public key's PEM as the secret (the algorithm-confusion attack).
    HmacWithPublicKey,
    /// Random text, not base64url.
    Garbage(String),
}

fn signing() -> impl Strategy<Value = Signing> {
    prop_oneof![
        Just(Signing::Empty),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Signing::Random),
        Just(Signing::Transplanted),
        Just(Signing::Attacker),
        Just(Signing::HmacWithPublicKey),
        "\\PC{0,40}".prop_map(Signing::Garbage),
    ]
}

fn transplanted_signature() -> &'static str {
    static SIG: OnceLock<String> = OnceLock::new();
    SIG.get_or_init(|| RSA.token(&session_claims()).rsplit('.').next().unwrap().to_owned())
}

fn jwt_shaped() -> impl Strategy<Value = String> {
    (header_json(), payload_text(), signing(), any::<bool>()).prop_map(|(header, payload, signing, padded)| {
        let enc = |b: &[u8]| {
            if padded {
                STANDARD.encode(b)
            } else {
                URL_SAFE_NO_PAD.encode(b)
            }
        };
        let message = format!("{}.{}", enc(header.to_string().as_bytes()), enc(payload.as_bytes()));
        let signature = match signing {
            Signing::Empty => String::new(),
            Signing::Random(bytes) => enc(&bytes),
            Signing::Transplanted => transplanted_signature().to_owned(),
            Signing::Attacker => b64(ATTACKER.sign_message("RS256", message.as_bytes())),
            Signing::HmacWithPublicKey => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, RSA.public_pem().as_bytes());
                b64(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref())
            }
            Signing::Garbage(text) => text,
        };
        format!("{message}.{signature}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prefixed_strings_reach_only_their_own_verifier(token in prefixed()) {
        refused_everywhere(header::AUTHORIZATION, &bearer(&token))?;
        let cookie = format!("__session={token}");
        refused_everywhere(header::COOKIE, cookie.as_bytes())?;
    }

    #[test]
    fn jwt_shaped_strings_are_refused(token in jwt_shaped()) {
        refused_everywhere(header::AUTHORIZATION, &bearer(&token))?;
        let cookie = format!("__session={token}");
        refused_everywhere(header::COOKIE, cookie.as_bytes())?;
    }

    #[test]
    fn arbitrary_header_and_cookie_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), cookie in any::<bool>()) {
        if cookie {
            let mut value = b"__session=".to_vec();
            value.extend_from_slice(&bytes);
            refused_everywhere(header::COOKIE, &value)?;
        } else {
            refused_everywhere(header::AUTHORIZATION, &bytes)?;
        }
    }
}

#[test]
fn the_real_verifiers_do_let_valid_credentials_through() {
    // Guards the properties above against passing only because everything is refused, and
    // shows each route's own verifier is called (the counters work).
    let f = fixture();
    let session = RSA.token(&session_claims());
    let ok = |path: &str, token: &str| status_of(path, header::AUTHORIZATION, &bearer(token));
    assert_eq!(ok("/keys", &f.valid_key), Some(200));
    assert_eq!(ok("/m2m", &f.valid_m2m), Some(200));
    assert_eq!(ok("/sessions", &session), Some(200));
    let cookie = format!("__session={session}");
    assert_eq!(status_of("/sessions", header::COOKIE, cookie.as_bytes()), Some(200));
    // Each valid credential on a route that refuses its type: 401, no verifier called.
    assert_eq!(ok("/sessions", &f.valid_key), Some(401));
    assert_eq!(ok("/keys", &f.valid_m2m), Some(401));
    assert_eq!(ok("/m2m", &session), Some(401));
    for (path, route) in PATHS.iter().zip(&f.routes) {
        let own: usize = TokenType::ALL
            .into_iter()
            .zip(&route.counters)
            .filter(|(t, _)| route.accepts.contains(*t))
            .map(|(_, c)| c.calls())
            .sum();
        assert!(own > 0, "{path}: its own verifier was called");
        assert_eq!(route.foreign_calls(), 0, "{path}");
    }
    // A valid-checksum secret is built the way the library builds them.
    assert_eq!(
        tokengate_runtime::keys::check_secret(&with_checksum(&f.valid_key[..36])),
        Ok(tokengate_runtime::keys::KeyKind::ApiKey)
    );
}
