//! Running the example server and the `tokengate` CLI as real processes, for the end-to-end
//! tests. The binaries are the ones `cargo test --workspace` builds:
//! `target/<profile>/examples/api_server` and `target/<profile>/tokengate`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `target/<profile>`, from the test binary's own path (`target/<profile>/deps/<test>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// The example server's binary.
pub fn example_bin() -> PathBuf {
    example_named("api_server")
}

/// The binary of the example `name`.
pub fn example_named(name: &str) -> PathBuf {
    built(target_dir().join("examples").join(name))
}

/// The `tokengate` CLI's binary.
pub fn cli_bin() -> PathBuf {
    built(target_dir().join("tokengate"))
}

/// A running example server; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// What it printed on stdout before `ready`.
    pub lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the example server on a free loopback port in `dir` with `args`, and waits for
    /// its `ready` line.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_example("api_server", "tokengate example server listening on ", dir, args)
    }

    /// Starts the example `name` like [`Server::start`]; its address is what follows `label`
    /// on the line that starts with it.
    pub fn start_example(name: &str, label: &str, dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(example_named(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("CLERK_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line == "ready" => break,
                Ok(line) => lines.push(line),
                Err(_) => panic!("the server did not get ready; it printed:\n{}", lines.join("\n")),
            }
        }
        let base = lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .expect("the address line")
            .to_owned();
        Server { child, base, lines }
    }

    /// The value printed after `label` at start-up.
    pub fn printed(&self, label: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{}", self.lines.join("\n")))
            .trim()
            .to_owned()
    }

    /// Whether the process is still alive.
    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `GET path`: the status and the body (JSON, or the text as a JSON string).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(15));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The status of `GET /api/example` with `secret`.
    pub async fn status_with(&self, secret: &str) -> u16 {
        self.get("/api/example", Some(secret)).await.0
    }
}

/// Runs the CLI with `args` (and `stdin`): exit code, stdout, stderr.
pub fn cli(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(cli_bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tokengate keys create … --format json`: the new key's id and secret.
pub fn create_key(database: &str, subject: &str, scopes: &[&str]) -> (String, String) {
    let mut args = vec![
        "keys",
        "create",
        "--database",
        database,
        "--subject",
        subject,
        "--format",
        "json",
    ];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let (code, out, err) = cli(&args, None);
    assert_eq!(code, 0, "keys create failed: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}
