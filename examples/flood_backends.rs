//! The remote backends for `bench/flood.sh`, on loopback: an RFC 7662 introspection endpoint
//! and the part of Clerk's Backend API the example server calls (`GET /v1/jwks`, `POST
//! /api_keys/verify`), each answering after a fixed delay (a real server's round trip), and
//! `GET /stats` with the calls each received and the most that were in flight at once.
//!
//! ```sh
//! cargo run --release --example flood_backends -- 127.0.0.1:0 20   # address, delay in ms
//! cargo run --release --example flood_backends -- --forge 1000     # 1 000 forged ak_ keys
//! ```
//!
//! Introspection: tokens starting `known-` are active, every other token inactive. Clerk:
//! the key [`KNOWN_KEY`] is a valid API key, every other key unknown (`404`). `--forge N`
//! prints N API keys with a valid checksum that no store holds: the flood of forged keys.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokengate::keys::{KeyKind, Secret};

/// The one API key the Clerk stand-in knows.
const KNOWN_KEY: &str = "ak_floodBenchKnownKey0123456789abcdefghij";

/// Calls of one endpoint.
#[derive(Default)]
struct Counter {
    calls: AtomicUsize,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Counter {
    fn enter(&self) -> Leave<'_> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.max.fetch_max(now, Ordering::Relaxed);
        Leave(self)
    }

    fn stats(&self) -> Value {
        json!({"calls": self.calls.load(Ordering::Relaxed), "max_in_flight": self.max.load(Ordering::Relaxed)})
    }
}

struct Leave<'a>(&'a Counter);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Backends {
    delay: Duration,
    introspection: Counter,
    clerk: Counter,
}

async fn introspect(State(b): State<Arc<Backends>>, body: String) -> Json<Value> {
    let _in = b.introspection.enter();
    tokio::time::sleep(b.delay).await;
    let known = body.split('&').any(|pair| pair.starts_with("token=known-"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Json(if known {
        json!({"active": true, "sub": "user_bench", "scope": "write:users", "exp": now + 3600})
    } else {
        json!({"active": false})
    })
}

async fn verify_api_key(State(b): State<Arc<Backends>>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let _in = b.clerk.enter();
    tokio::time::sleep(b.delay).await;
    if body["secret"] != KNOWN_KEY {
        let errors =
            json!({"errors": [{"message": "not found", "long_message": "not found", "code": "resource_not_found"}]});
        return (StatusCode::NOT_FOUND, Json(errors));
    }
    (
        StatusCode::OK,
        Json(json!({
            "object": "api_key", "id": "ak_2bench", "type": "api_key", "subject": "user_bench",
            "name": "bench", "description": null, "claims": null, "scopes": ["write:users"],
            "revoked": false, "revocation_reason": null, "expired": false, "expiration": null,
            "created_by": null, "last_used_at": null, "created_at": 0, "updated_at": 0
        })),
    )
}

/// A JWKS with one RSA public key nobody signs with: the example server needs one for
/// session tokens in Clerk-hosted mode; the benchmark sends none.
async fn jwks() -> Json<Value> {
    Json(
        json!({"keys": [{"kid": "ins_bench", "alg": "RS256", "use": "sig", "kty": "RSA",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        "e": "AQAB"}]}),
    )
}

async fn stats(State(b): State<Arc<Backends>>) -> Json<Value> {
    Json(json!({"introspection": b.introspection.stats(), "clerk": b.clerk.stats()}))
}

#[allow(clippy::print_stdout)]
fn forge(count: &str) -> Result<(), String> {
    let count: usize = count
        .parse()
        .map_err(|_| format!("--forge takes a number, got {count:?}"))?;
    let mut out = String::with_capacity(count * 48);
    for _ in 0..count {
        let secret = Secret::generate(KeyKind::ApiKey).map_err(|e| format!("no randomness: {e}"))?;
        out.push_str(secret.expose());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn serve(addr: &str, delay_ms: &str) -> Result<(), String> {
    let delay_ms: u64 = delay_ms
        .parse()
        .map_err(|_| format!("the delay is in whole ms, got {delay_ms:?}"))?;
    let backends = Arc::new(Backends {
        delay: Duration::from_millis(delay_ms),
        introspection: Counter::default(),
        clerk: Counter::default(),
    });
    let app = Router::new()
        .route("/introspect", post(introspect))
        .route("/api_keys/verify", post(verify_api_key))
        .route("/v1/jwks", get(jwks))
        .route("/stats", get(stats))
        .with_state(backends);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    {
        use std::io::Write as _;
        println!("listening on http://{local}");
        println!("known clerk key: {KNOWN_KEY}");
        println!("ready");
        let _ = std::io::stdout().flush();
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--forge", count] => forge(count),
        [addr, delay_ms] => serve(addr, delay_ms).await,
        [addr] => serve(addr, "20").await,
        [] => serve("127.0.0.1:0", "20").await,
        _ => Err("usage: flood_backends [ADDR [DELAY_MS]] | flood_backends --forge N".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
