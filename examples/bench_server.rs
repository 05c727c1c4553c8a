//! A server for `bench/load.sh`: one handler served twice, unguarded at `/open` and behind
//! `#[accepts_token(api_key)]` at `/guarded`, so a load test measures the guard and nothing
//! else. API keys live in an SQLite file in a temporary directory; one key is issued and
//! printed at start-up.
//!
//! ```sh
//! cargo run --release --example bench_server   # prints `listening on …`, `api key: …`, `ready`
//! TOKENGATE_BENCH_METRICS=1 cargo run --release --example bench_server   # with the Prometheus recorder
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokengate::keys::{KeySpec, KeyVerifier, SqliteKeyStore};
use tokengate::{TokenGate, TokenType, accepts_token};

/// The handler body both routes share.
async fn open() -> &'static str {
    "ok"
}

/// The same body behind an API-key guard.
#[accepts_token(api_key)]
async fn guarded() -> &'static str {
    "ok"
}

async fn run() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tokengate-bench-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let store = SqliteKeyStore::open(dir.join("keys.db"))
        .await
        .map_err(|e| e.to_string())?;
    let keys = Arc::new(KeyVerifier::new(Arc::new(store)));
    let issued = keys
        .issue(KeySpec::api_key("user_bench", "bench"))
        .await
        .map_err(|e| e.to_string())?;
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, keys.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let app = Router::<TokenGate>::new()
        .route("/open", get(open))
        .route("/guarded", get(guarded))
        .with_state(gate);
    if std::env::var("TOKENGATE_BENCH_METRICS").is_ok_and(|v| v == "1") {
        install_prometheus()?;
    }
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    #[allow(clippy::print_stdout)]
    {
        use std::io::Write as _;
        println!("listening on http://{local}");
        println!("api key: {}", issued.secret.expose());
        println!("ready");
        let _ = std::io::stdout().flush();
    }
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    let _ = keys.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    served.map_err(|e| e.to_string())
}

/// `TOKENGATE_BENCH_METRICS=1`: the Prometheus exporter's recorder installed, as a service
/// that exports tokengate's metrics runs (its text is not served: only the recording costs).
fn install_prometheus() -> Result<(), String> {
    if !cfg!(feature = "metrics") {
        return Err("TOKENGATE_BENCH_METRICS=1 needs the `metrics` feature".to_owned());
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
    #[allow(clippy::print_stdout)]
    {
        println!("metrics: the Prometheus recorder is installed");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
