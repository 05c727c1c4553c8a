//! Verifications per second of one RS256 session token through [`JwtVerifier::verify_token`],
//! single-threaded, with the verified-token cache off and on: tokengate's side of
//! `bench/clerk-node/run.sh`, which writes the token and key and compares with Clerk's Node SDK.
//!
//! ```sh
//! cargo run --release --example bench_verify -- TOKEN_FILE PUBLIC_PEM_FILE [SECONDS]
//! ```
//!
//! Prints `tokengate-cache-off <verifications/s>` and `tokengate-cache-on <verifications/s>`.

use std::future::Future;
use std::process::ExitCode;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokengate::TokenType;
use tokengate::jwt::{JwtVerifier, KeySet, SessionRules, TokenCacheConfig};

/// The `azp` the token carries (`bench/clerk-node/verify.mjs`); both sides check it.
const AUTHORIZED_PARTY: &str = "https://app.example.com";

/// Polls a future that completes without waiting: with a static key, verification never waits.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Verifies `token` in a loop for `seconds` (after one second of warm-up); verifications/s.
fn measure(verifier: &JwtVerifier, token: &str, seconds: f64) -> Result<f64, String> {
    let once = || match ready(verifier.verify_token(token, TokenType::SessionToken)) {
        Some(Ok(auth)) if auth.user_id.as_deref() == Some("user_2abcdefghijklmnopqrstuvwxyz") => Ok(()),
        Some(Ok(_)) => Err("the token verified with an unexpected subject".to_owned()),
        Some(Err(e)) => Err(format!("the token did not verify: {e}")),
        None => Err("verification waited, which a static key never does".to_owned()),
    };
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(1) {
        once()?;
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            once()?;
        }
        count += 100;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [token_file, pem_file, rest @ ..] = args.as_slice() else {
        return Err("usage: bench_verify TOKEN_FILE PUBLIC_PEM_FILE [SECONDS]".to_owned());
    };
    let seconds: f64 = match rest.first() {
        Some(s) => s.parse().map_err(|_| format!("SECONDS must be a number, got {s:?}"))?,
        None => 5.0,
    };
    let token = std::fs::read_to_string(token_file).map_err(|e| format!("cannot read {token_file}: {e}"))?;
    let pem = std::fs::read_to_string(pem_file).map_err(|e| format!("cannot read {pem_file}: {e}"))?;
    let token = token.trim();
    for (name, cache) in [
        ("tokengate-cache-off", TokenCacheConfig::disabled()),
        ("tokengate-cache-on", TokenCacheConfig::default()),
    ] {
        let verifier = JwtVerifier::builder()
            .keys(KeySet::from_pem(&pem).map_err(|e| format!("{pem_file}: {e}"))?)
            .session(SessionRules::new().authorized_parties([AUTHORIZED_PARTY]))
            .token_cache(cache)
            .build()
            .map_err(|e| e.to_string())?;
        let rate = measure(&verifier, token, seconds)?;
        #[allow(clippy::print_stdout)]
        {
            println!("{name} {rate:.0}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
