//! A real Redis server for tests, on a free loopback port, with nothing persisted; stopped
//! when dropped.
//!
//! `redis-server` is looked for in `TOKENGATE_REDIS_SERVER`, then `PATH`. When it is absent
//! the tests print a loud `SKIPPED` message and return — unless `TOKENGATE_REQUIRE_REDIS=1`
//! (set by `.ci/run`, which installs Debian's `redis-server`), which turns that into a failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis server of its own.
pub struct Redis {
    child: Child,
    pub port: u16,
    bin: PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skip(why: &str) {
    let message = format!(
        "\n\n*** SKIPPED: Redis tests: {why}.\n*** Install Redis (Debian: `apt-get install redis-server`) or set \
         TOKENGATE_REDIS_SERVER to the redis-server binary.\n\n"
    );
    if std::env::var("TOKENGATE_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
        panic!("{message}TOKENGATE_REQUIRE_REDIS=1: Redis tests must run here");
    }
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(message.as_bytes());
}

fn find_bin() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("TOKENGATE_REDIS_SERVER") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts a server; `None` (after a loud message) when Redis is not installed.
    pub fn start() -> Option<Redis> {
        let Some(bin) = find_bin() else {
            skip("no redis-server binary");
            return None;
        };
        Some(Redis::start_with(bin, free_port()))
    }

    fn start_with(bin: PathBuf, port: u16) -> Redis {
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port, bin }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (the port stays reserved for [`restart`](Redis::restart)).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        let again = Redis::start_with(self.bin.clone(), self.port);
        let old = std::mem::replace(self, again);
        drop(old);
    }
}
