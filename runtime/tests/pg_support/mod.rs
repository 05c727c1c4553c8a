//! A real PostgreSQL server for tests, on loopback, in a temporary directory.
//!
//! - [`Cluster::start`] runs `initdb` and `pg_ctl` itself (as the `postgres` user when the
//!   tests run as root, since PostgreSQL refuses to run as root), on a free port, with its
//!   socket and data in a temporary directory that is deleted afterwards. Tests that stop and
//!   restart the server use their own cluster.
//! - [`database`] gives a fresh, empty database: on the server named by
//!   `TOKENGATE_TEST_POSTGRES_URL` when set (CI starts one), else on a cluster of its own.
//!
//! The binaries are looked for in `TOKENGATE_PG_BIN`, `/usr/lib/postgresql/*/bin`, then
//! `PATH`. When they are absent the tests print a loud `SKIPPED` message and return — unless
//! `TOKENGATE_REQUIRE_POSTGRES=1` (set by `.ci/run`), which turns that into a failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server of its own, stopped and deleted when dropped.
pub struct Cluster {
    bin: PathBuf,
    run_as: Option<String>,
    data: PathBuf,
    log: PathBuf,
    sockets: PathBuf,
    port: u16,
    // Last: deleted after the server stopped.
    _dir: tempfile::TempDir,
}

fn required() -> bool {
    std::env::var("TOKENGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Prints why PostgreSQL tests are skipped, or fails when they are required.
fn skip(why: &str) {
    let message = format!(
        "\n\n*** SKIPPED: PostgreSQL tests: {why}.\n*** Install PostgreSQL (Debian: `apt-get install postgresql`) or set \
         TOKENGATE_PG_BIN to the directory holding initdb and pg_ctl.\n\n"
    );
    if required() {
        panic!("{message}TOKENGATE_REQUIRE_POSTGRES=1: PostgreSQL tests must run here");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and a
    // skip must be seen.
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(message.as_bytes());
}

fn find_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file();
    if let Ok(dir) = std::env::var("TOKENGATE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has_tools(d))
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has_tools(d))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts a cluster, or returns `None` after a loud message when PostgreSQL is not
    /// installed (a failure under `TOKENGATE_REQUIRE_POSTGRES=1`).
    pub fn start() -> Option<Cluster> {
        let Some(bin) = find_bin() else {
            skip("initdb and pg_ctl were not found");
            return None;
        };
        let run_as = if is_root() {
            if id_of("postgres", "-u").is_none() {
                skip("the tests run as root and there is no `postgres` user to run the server as");
                return None;
            }
            Some("postgres".to_owned())
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("tokengate-pg-").tempdir().unwrap();
        if run_as.is_some() {
            let uid = id_of("postgres", "-u").unwrap();
            let gid = id_of("postgres", "-g").unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let sockets = dir.path().join("sockets");
        let log = dir.path().join("server.log");
        let mut cluster = Cluster {
            bin,
            run_as,
            data,
            log,
            sockets,
            port: 0,
            _dir: dir,
        };
        std::fs::create_dir(&cluster.sockets).unwrap();
        if let Some(user) = &cluster.run_as {
            let uid = id_of(user, "-u").unwrap();
            let gid = id_of(user, "-g").unwrap();
            std::os::unix::fs::chown(&cluster.sockets, Some(uid), Some(gid)).unwrap();
        }
        let data = cluster.data.display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        // A port picked now may be taken before the server binds it: try a few.
        for attempt in 0..5 {
            cluster.port = free_port();
            if cluster.try_start() {
                return Some(cluster);
            }
            eprintln!("PostgreSQL did not start on port {} (attempt {attempt})", cluster.port);
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(&cluster.log).unwrap_or_default()
        );
    }

    fn command(&self, tool: &str) -> Command {
        let tool = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(tool);
                c
            }
            None => Command::new(tool),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.sockets.display()
        );
        self.command("pg_ctl")
            .args(["-D", &self.data.display().to_string()])
            .args(["-l", &self.log.display().to_string()])
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The `postgres://` URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// Stops the server (`pg_ctl stop -m fast`): connections are cut at once.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data.display().to_string(), "-w", "-m", "fast", "stop"],
        );
    }

    /// Starts it again on the same port.
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart on port {}; its log:\n{}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data.display().to_string(), "-w", "-m", "immediate", "stop"])
            .output();
    }
}

/// Creates an empty database on the server `server_url` names; returns its URL.
pub async fn create_database(server_url: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "tokengate_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let pool = sqlx::PgPool::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server_url, String::new()),
    };
    let (server, _) = base.rsplit_once('/').unwrap();
    let server = if server.ends_with('/') || server.ends_with(':') {
        base
    } else {
        server
    };
    format!("{server}/{name}{query}")
}

/// A fresh database: on `TOKENGATE_TEST_POSTGRES_URL`'s server when set, else on a cluster of
/// its own (returned, to keep it running). `None` when PostgreSQL is not available here.
pub async fn database() -> Option<(Option<Cluster>, String)> {
    if let Ok(url) = std::env::var("TOKENGATE_TEST_POSTGRES_URL")
        && !url.trim().is_empty()
    {
        return Some((None, create_database(url.trim()).await));
    }
    let cluster = Cluster::start()?;
    let url = create_database(&cluster.url()).await;
    Some((Some(cluster), url))
}
