//! `examples/quickstart.rs` as a process, as a newcomer runs it: the key and the session token
//! it prints open its two routes, each only its own, and nothing opens them without a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

mod process;

/// The running quickstart; killed when dropped.
struct Quickstart(Child);

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the quickstart on a free port; its printed key, token and base URL.
fn start() -> (Quickstart, String, String, String) {
    let mut child = Command::new(process::example_named("quickstart"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect();
    let after = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` in {lines:?}"))
            .trim()
            .to_owned()
    };
    let (key, session) = (after("API key:"), after("session token:"));
    let base = lines[3]
        .split(' ')
        .next_back()
        .and_then(|url| url.strip_suffix("/profile"))
        .unwrap_or_else(|| panic!("no profile URL in {lines:?}"))
        .to_owned();
    (Quickstart(child), key, session, base)
}

async fn get(url: String, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_printed_key_and_token_open_their_own_route_only() {
    let (_server, key, session, base) = start();
    assert!(key.starts_with("ak_"), "{key}");

    let (status, body) = get(format!("{base}/reports"), Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["owner"], "user_123");
    assert_eq!(body["scopes"], serde_json::json!(["reports:read"]));

    let (status, body) = get(format!("{base}/profile"), Some(&session)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userId"], "user_123");

    assert_eq!(get(format!("{base}/profile"), Some(&key)).await.0, 401);
    assert_eq!(get(format!("{base}/reports"), Some(&session)).await.0, 401);
    assert_eq!(get(format!("{base}/reports"), None).await.0, 401);
}
