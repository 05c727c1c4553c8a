//! Shared by the `jwt_*` tests: keys generated at test time (aws-lc-rs), tokens signed with
//! them (any header and payload text, so malformed and hostile tokens are real too), and a
//! loopback JWKS server that counts its requests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaPublicKeyComponents};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PEM of DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// An RSA key pair generated for the test.
pub struct Rsa {
    pub pair: aws_lc_rs::rsa::KeyPair,
    pub kid: String,
}

impl Rsa {
    pub fn generate(kid: &str) -> Rsa {
        Rsa {
            pair: aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            kid: kid.to_owned(),
        }
    }

    pub fn public_pem(&self) -> String {
        let der = self.pair.public_key().as_der().unwrap();
        pem("PUBLIC KEY", der.as_ref())
    }

    /// The public JWK, with `alg` when given.
    pub fn jwk(&self, alg: Option<&str>) -> Value {
        let c = RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        let mut jwk = json!({"kty":"RSA","kid":self.kid,"use":"sig","n":b64(&c.n),"e":b64(&c.e)});
        if let Some(alg) = alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    fn sign_with(&self, encoding: &'static dyn signature::RsaEncoding, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(encoding, &SystemRandom::new(), message, &mut sig)
            .unwrap();
        sig
    }

    /// A token with exactly these header and payload texts, signed with `alg`.
    pub fn sign_raw(&self, alg: &str, header: &str, payload: &str) -> String {
        let message = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_message(alg, message.as_bytes());
        format!("{message}.{}", b64(sig))
    }

    pub fn sign_message(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let encoding: &'static dyn signature::RsaEncoding = match alg {
            "RS256" => &signature::RSA_PKCS1_SHA256,
            "RS384" => &signature::RSA_PKCS1_SHA384,
            "RS512" => &signature::RSA_PKCS1_SHA512,
            "PS256" => &signature::RSA_PSS_SHA256,
            other => panic!("unsupported test algorithm {other}"),
        };
        self.sign_with(encoding, message)
    }

    /// An RS256 token with this key's `kid` and the given claims.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg":"RS256","typ":"JWT","kid":self.kid}).to_string();
        self.sign_raw("RS256", &header, &claims.to_string())
    }

    /// A token with a custom header object (alg RS256 unless the header says PS256).
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or("RS256");
        self.sign_raw(alg, &header.to_string(), &claims.to_string())
    }
}

/// An EC P-256 key pair generated for the test.
pub struct Ec {
    pub pair: EcdsaKeyPair,
    pub kid: String,
}

impl Ec {
    pub fn generate(kid: &str) -> Ec {
        Ec {
            pair: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            kid: kid.to_owned(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        json!({"kty":"EC","crv":"P-256","kid":self.kid,"alg":"ES256","x":b64(&point[1..33]),"y":b64(&point[33..])})
    }

    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg":"ES256","typ":"JWT","kid":self.kid}).to_string();
        let message = format!("{}.{}", b64(header), b64(claims.to_string()));
        let sig = self.pair.sign(&SystemRandom::new(), message.as_bytes()).unwrap();
        format!("{message}.{}", b64(sig.as_ref()))
    }
}

/// One RSA key shared by the tests of a binary (RSA generation is slow in debug builds).
pub static RSA: LazyLock<Rsa> = LazyLock::new(|| Rsa::generate("key-1"));
pub static RSA2: LazyLock<Rsa> = LazyLock::new(|| Rsa::generate("key-2"));
pub static ATTACKER: LazyLock<Rsa> = LazyLock::new(|| Rsa::generate("attacker"));

/// Claims of a valid Clerk-like session token.
pub fn session_claims() -> Value {
    let now = now();
    json!({
        "sub":"user_123","sid":"sess_456","sts":"active","azp":"https://app.example.com",
        "iss":"https://clerk.example.com","exp":now + 60,"iat":now - 1,"nbf":now - 1,"jti":"jti_1","v":2,
        "fea":"o:invoices","o":{"id":"org_1","rol":"admin","slg":"acme","per":"read,create","fpm":"3"}
    })
}

/// The `iss` of the Clerk-like tokens here (a Clerk instance's Frontend API URL).
pub const CLERK_ISSUER: &str = "https://clerk.example.com";

/// Claims of a valid Clerk-like M2M JWT (as Clerk's SDK fixtures: `scopes` and `aud` list the
/// machines it may call).
pub fn m2m_claims() -> Value {
    let now = now();
    json!({
        "iss":CLERK_ISSUER,"sub":"mch_1","aud":["mch_2","mch_3"],"scopes":"mch_2 mch_3",
        "exp":now + 60,"iat":now - 1,"nbf":now - 1,"jti":"mt_abc"
    })
}

pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// How the loopback JWKS server answers.
#[derive(Clone)]
pub enum Mode {
    Serve,
    Status(StatusCode),
    Slow(Duration),
}

struct ServerState {
    body: Mutex<Value>,
    raw: Mutex<Option<String>>,
    mode: Mutex<Mode>,
    hits: AtomicUsize,
    paths: Mutex<Vec<String>>,
    required_auth: Mutex<Option<String>>,
    docs: Mutex<std::collections::HashMap<String, Value>>,
}

/// A JWKS (and discovery) server on 127.0.0.1:0 that counts requests.
pub struct JwksServer {
    pub base: String,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

async fn handle(State(state): State<Arc<ServerState>>, uri: Uri, headers: HeaderMap) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    state.paths.lock().unwrap().push(uri.path().to_owned());
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        Mode::Serve => {}
        Mode::Status(status) => return status.into_response(),
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
    }
    let required = state.required_auth.lock().unwrap().clone();
    if let Some(required) = required {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(required.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    if let Some(raw) = state.raw.lock().unwrap().clone() {
        return raw.into_response();
    }
    let doc = if uri.path() == "/jwks" {
        Some(state.body.lock().unwrap().clone())
    } else {
        state.docs.lock().unwrap().get(uri.path()).cloned()
    };
    match doc {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl JwksServer {
    /// Serves `jwks` at `/jwks`.
    pub async fn start(jwks: Value) -> JwksServer {
        let state = Arc::new(ServerState {
            body: Mutex::new(jwks),
            raw: Mutex::new(None),
            mode: Mutex::new(Mode::Serve),
            hits: AtomicUsize::new(0),
            paths: Mutex::new(Vec::new()),
            required_auth: Mutex::new(None),
            docs: Mutex::new(std::collections::HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            base: format!("http://{addr}"),
            state,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    /// Serves `doc` at `path` (e.g. a discovery document).
    pub fn set_doc(&self, path: &str, doc: Value) {
        self.state.docs.lock().unwrap().insert(path.to_owned(), doc);
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.state.body.lock().unwrap() = jwks;
    }

    /// Serves this exact text for every path.
    pub fn set_raw(&self, raw: String) {
        *self.state.raw.lock().unwrap() = Some(raw);
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn require_authorization(&self, value: &str) {
        *self.state.required_auth.lock().unwrap() = Some(value.to_owned());
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn paths(&self) -> Vec<String> {
        self.state.paths.lock().unwrap().clone()
    }

    /// Goes down: the listener closes (new connections are refused) and connections the
    /// client keeps alive get `503`.
    pub async fn stop(&self) {
        self.set_mode(Mode::Status(StatusCode::SERVICE_UNAVAILABLE));
        self.task.abort();
        // Let the abort drop the listener.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
