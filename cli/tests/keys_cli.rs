//! The built `tokengate` binary against a temporary SQLite database: create → list → verify →
//! revoke → verify fails, and clear errors with exit code 2 for bad flags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tokengate(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "failed: {}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn create_list_verify_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let db = ["--database", url.as_str()];

    let created = json(&tokengate(
        dir.path(),
        &[
            &["keys", "create"][..],
            &db,
            &[
                "--subject",
                "user_123",
                "--name",
                "ci",
                "--scope",
                "write:users",
                "--scope",
                "read:users",
                "--claims",
                r#"{"team":"billing"}"#,
                "--expires-in",
                "30d",
                "--format",
                "json",
            ],
        ]
        .concat(),
        None,
    ));
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(id.starts_with("ak_") && secret.starts_with("ak_") && id != secret);
    assert_eq!(created["scopes"], serde_json::json!(["write:users", "read:users"]));
    assert_eq!(created["claims"]["team"], "billing");
    let expires = created["expires_at"].as_i64().unwrap() - created["created_at"].as_i64().unwrap();
    assert_eq!(expires, 30 * 86_400);

    // An M2M token, in text format: the secret on its own line.
    let m2m = tokengate(
        dir.path(),
        &[
            &["keys", "create"][..],
            &db,
            &["--subject", "mch_worker", "--kind", "m2m"],
        ]
        .concat(),
        None,
    );
    assert!(m2m.status.success(), "{}", stderr(&m2m));
    let text = stdout(&m2m);
    assert!(text.contains("Created M2M token mt_"), "{text}");
    let m2m_secret = text.lines().last().unwrap().to_string();
    assert!(m2m_secret.starts_with("mt_"));

    // List: ids and metadata, never secrets.
    let listed = tokengate(
        dir.path(),
        &[&["keys", "list"][..], &db, &["--format", "json"]].concat(),
        None,
    );
    let all = json(&listed);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(all[0]["status"], "active");
    let raw = stdout(&listed);
    assert!(!raw.contains(&secret) && !raw.contains(&m2m_secret) && !raw.contains("secret"));
    let mine = json(&tokengate(
        dir.path(),
        &[
            &["keys", "list"][..],
            &db,
            &["--subject", "user_123", "--format", "json"],
        ]
        .concat(),
        None,
    ));
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let text = tokengate(dir.path(), &[&["keys", "list"][..], &db].concat(), None);
    assert!(stdout(&text).contains(&id) && !stdout(&text).contains(&secret));

    // Verify from stdin.
    let verified = json(&tokengate(
        dir.path(),
        &[&["keys", "verify"][..], &db, &["--format", "json"]].concat(),
        Some(&format!("{secret}\n")),
    ));
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["userId"], "user_123");
    assert_eq!(verified["id"], id.as_str());
    let verified = tokengate(dir.path(), &[&["keys", "verify"][..], &db].concat(), Some(&m2m_secret));
    assert!(verified.status.success());
    assert!(stdout(&verified).contains("valid m2m_token"));

    // Revoke, then verification fails.
    let revoked = tokengate(
        dir.path(),
        &[&["keys", "revoke", id.as_str()][..], &db, &["--reason", "rotated"]].concat(),
        None,
    );
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains(&id));
    let refused = tokengate(dir.path(), &[&["keys", "verify"][..], &db].concat(), Some(&secret));
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("token-revoked"), "{}", stderr(&refused));
    let listed = json(&tokengate(
        dir.path(),
        &[&["keys", "list"][..], &db, &["--format", "json"]].concat(),
        None,
    ));
    assert_eq!(listed[0]["status"], "revoked");
    assert_eq!(listed[0]["revocation_reason"], "rotated");

    // A typo is refused by its checksum.
    let mut typo = secret.clone().into_bytes();
    typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
    let refused = tokengate(
        dir.path(),
        &[&["keys", "verify"][..], &db].concat(),
        Some(std::str::from_utf8(&typo).unwrap()),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("bad-checksum"));

    // Unknown id.
    let unknown = tokengate(
        dir.path(),
        &[&["keys", "revoke", "ak_00000000000000000000000000000000"][..], &db].concat(),
        None,
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no key with id"), "{}", stderr(&unknown));
}

#[test]
fn the_default_database_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let created = json(&tokengate(
        dir.path(),
        &["keys", "create", "--subject", "user_1", "--format", "json"],
        None,
    ));
    assert!(
        dir.path().join("tokengate.db").exists(),
        "the default is tokengate.db in the working directory"
    );
    assert_eq!(tokengate_runtime::keys::DEFAULT_DATABASE_FILE, "tokengate.db");
    assert_eq!(created["name"], "cli");

    // DATABASE_URL is read when --database is absent.
    let other = dir.path().join("other.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["keys", "list", "--format", "json"])
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("sqlite://{}", other.display()))
        .output()
        .unwrap();
    assert_eq!(json(&out), serde_json::json!([]));
    // A database that does not exist is read as an empty one and not created: a mistyped path
    // leaves no empty database behind, and standard error names it.
    assert!(!other.exists());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("no key database at {}", other.display())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokengate(
        dir.path(),
        &[
            "keys",
            "revoke",
            "ak_0123456789abcdef0123456789abcdef",
            "--database",
            other.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no key with id `ak_0123456789abcdef0123456789abcdef`"),
        "{}",
        stderr(&out)
    );
    assert!(!other.exists());
    // `keys create` makes it.
    json(&tokengate(
        dir.path(),
        &[
            "keys",
            "create",
            "--subject",
            "user_1",
            "--database",
            other.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    ));
    assert!(other.exists());
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["keys", "create", "--subject", "user_1", "--expires-in", "30x"], "30d"),
        (
            &["keys", "create", "--subject", "user_1", "--expires-in", "0d"],
            "more than zero",
        ),
        (
            &["keys", "create", "--subject", "user_1", "--claims", "{nope"],
            "not valid JSON",
        ),
        (
            &["keys", "create", "--subject", "user_1", "--claims", "[1]"],
            "JSON object",
        ),
        (
            &["keys", "create", "--subject", "user_1", "--kind", "session"],
            "api-key",
        ),
        (&["keys", "create", "--name", "ci"], "--subject"),
        (&["keys", "create", "--subject", "bob"], "user_"),
        (&["keys", "create", "--subject", "user_1", "--scope", "a b"], "scope"),
        (
            &[
                "keys",
                "list",
                "--database",
                "postgres://app:hunter2@localhost:notaport/app",
            ],
            "not a valid PostgreSQL URL",
        ),
        (&["keys", "list", "--format", "yaml"], "json"),
        (&["keys", "frobnicate"], "unrecognized subcommand"),
        (&["keys", "verify"], "standard input"),
    ];
    for (args, hint) in cases {
        let out = tokengate(dir.path(), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(hint),
            "{args:?}: expected `{hint}` in: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", stdout(&out));
    }
    // None of them created a key.
    let out = tokengate(dir.path(), &["keys", "list", "--format", "json"], None);
    assert_eq!(json(&out), serde_json::json!([]));
}

#[test]
fn an_unreachable_postgres_database_is_a_failure_that_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");
    let out = tokengate(dir.path(), &["keys", "list", "--database", &url], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot connect to the PostgreSQL database"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("app:***@127.0.0.1"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));

    // libpq's other place for a password: the query string.
    let url = format!("postgres://app@127.0.0.1:{port}/app?sslmode=disable&password=hunter2");
    let out = tokengate(dir.path(), &["keys", "list", "--database", &url], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("password=***"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

/// A database in `dir` with one API key of `user_1`: its URL, and the key as `keys create
/// --format json` printed it (with its secret).
fn one_key(dir: &Path) -> (String, serde_json::Value) {
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let args = [
        "keys",
        "create",
        "--database",
        &url,
        "--subject",
        "user_1",
        "--format",
        "json",
    ];
    let created = json(&tokengate(dir, &args, None));
    (url, created)
}

/// A key's secret pasted where its id belongs finds no key, and the message does not repeat
/// it (however it was pasted) but says how to find the id; the key stays as it was.
#[test]
fn a_secret_given_as_an_id_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let (url, created) = one_key(dir.path());
    let secret = created["secret"].as_str().unwrap();
    // Mistyped or cut short, with `Bearer `, in quotes or spaces: still not repeated.
    let truncated = &secret[..secret.len() - 4];
    let body = &truncated[3..];
    let bearer = format!("Bearer {secret}");
    let quoted = format!(" '{secret}' ");
    for value in [secret, truncated, bearer.as_str(), quoted.as_str()] {
        for (args, code) in [
            (&["keys", "revoke", value][..], 1),
            (&["keys", "disable", value], 2),
            (&["keys", "update", value, "--name", "x"], 2),
            (&["keys", "reroll", value, "--grace", "1h"], 2),
            (&["keys", "delete", value], 2),
            (&["keys", "history", value], 2),
            (&["keys", "list", "--after", value], 2),
        ] {
            let out = tokengate(dir.path(), &[args, &["--database", &url]].concat(), None);
            assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("has the shape of a key's secret"),
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(!stderr(&out).contains(body), "{args:?}: {}", stderr(&out));
            assert!(!stdout(&out).contains(body), "{args:?}: {}", stdout(&out));
        }
    }
    let revoke = tokengate(dir.path(), &["keys", "revoke", secret, "--database", &url], None);
    assert!(
        stderr(&revoke).contains("pipe the secret to `tokengate keys verify`"),
        "{}",
        stderr(&revoke)
    );
    let verified = tokengate(dir.path(), &["keys", "verify", "--database", &url], Some(secret));
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).contains(created["id"].as_str().unwrap()),
        "{}",
        stdout(&verified)
    );
}

/// `keys verify` says what a refusal means and, from the input's shape, what to do about it,
/// without repeating the input.
#[test]
fn verify_explains_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (url, created) = one_key(dir.path());
    let secret = created["secret"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let typo = format!(
        "{}{}",
        &secret[..secret.len() - 1],
        if secret.ends_with('a') { "b" } else { "a" }
    );
    for (input, expected) in [
        (
            format!("Bearer {secret}"),
            "malformed-token (the token is not well formed); give the secret alone",
        ),
        (id.to_owned(), "that is a key's id"),
        (
            typo.clone(),
            "bad-checksum (the token checksum is invalid); the secret was mistyped",
        ),
        ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln".to_owned(), "not JWTs"),
        // Not ASCII: no byte index may split a character.
        ("ééééé ak_x".to_owned(), "malformed-token"),
    ] {
        let out = tokengate(dir.path(), &["keys", "verify", "--database", &url], Some(&input));
        assert_eq!(out.status.code(), Some(1), "{input}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{input}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains(&typo[3..]) && !stderr(&out).contains(&secret[3..]),
            "{}",
            stderr(&out)
        );
    }
}

/// `keys list` streams a table of any size a page at a time, in creation order, and pages with
/// `--limit` and `--after`.
#[test]
fn list_pages_through_a_large_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let url = format!("sqlite://{}", path.display());
    let db = ["--database", url.as_str()];
    let first = tokengate(
        dir.path(),
        &[&["keys", "create"][..], &db, &["--subject", "user_1"]].concat(),
        None,
    );
    assert!(first.status.success(), "{}", stderr(&first));
    // 1 203 more rows (more than two of the CLI's pages), created after the first key.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1203) \
             INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at, seq) \
             SELECT printf('ak_%032x', 5000 - i), 'api_key', randomblob(32), 'bulk', 'user_2', '[]', '{}', \
             4000000000 + i / 100, i FROM n",
        )
        .unwrap();
    drop(connection);
    let list = |extra: &[&str]| tokengate(dir.path(), &[&["keys", "list"][..], &db, extra].concat(), None);

    let all = json(&list(&["--format", "json"]));
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1204);
    // Oldest first; rows of the same second in the order they were inserted (ids descending).
    assert_eq!(ids[1], "ak_00000000000000000000000000001387");
    assert_eq!(ids[1203], "ak_00000000000000000000000000000ed5");

    let page = list(&["--limit", "10", "--format", "json"]);
    let hint = stderr(&page);
    let page = json(&page);
    assert_eq!(page.as_array().unwrap().len(), 10);
    assert!(hint.contains(&format!("--after {}", ids[9])), "{hint}");
    let next = json(&list(&["--limit", "10", "--after", ids[9], "--format", "json"]));
    let next: Vec<&str> = next
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(next, ids[10..20]);
    let last = list(&["--after", ids[1200]]);
    assert!(last.status.success() && stderr(&last).is_empty(), "{}", stderr(&last));
    assert_eq!(stdout(&last).lines().count(), 4, "a header and the last three keys");

    let unknown = list(&["--after", "ak_missing"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no key `ak_missing` to list after"),
        "{}",
        stderr(&unknown)
    );
    let zero = list(&["--limit", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
}

/// `keys update`, `reroll`, `disable`, `enable`, `delete` and `history` on a real SQLite file,
/// each seen by `keys verify` (a fresh process, so no cache in between) and recorded with its
/// actor; bad input is exit code 2 with one line saying what to fix.
#[test]
fn lifecycle_commands() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let db = ["--database", url.as_str()];
    let run = |args: &[&str], stdin: Option<&str>| tokengate(dir.path(), &[args, &db].concat(), stdin);
    let verify = |secret: &str| {
        let out = run(&["keys", "verify", "--format", "json"], Some(secret));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let created = json(&run(
        &[
            "keys",
            "create",
            "--subject",
            "user_1",
            "--scope",
            "read",
            "--actor",
            "alice",
            "--format",
            "json",
        ],
        None,
    ));
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["secret"].as_str().unwrap().to_owned();

    let updated = json(&run(
        &[
            "keys",
            "update",
            &id,
            "--add-scope",
            "write",
            "--name",
            "ci-2",
            "--actor",
            "bob",
            "--format",
            "json",
        ],
        None,
    ));
    assert_eq!(updated["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(verify(&first)["scopes"], serde_json::json!(["read", "write"]));

    // Reroll with a grace period: both secrets work; without: the old one is refused at once.
    let graced = json(&run(
        &["keys", "reroll", &id, "--grace", "24h", "--format", "json"],
        None,
    ));
    let second = graced["secret"].as_str().unwrap().to_owned();
    assert_eq!(graced["id"], id.as_str());
    assert!(graced["grace_until"].as_i64().unwrap() >= graced["created_at"].as_i64().unwrap() + 86_000);
    assert_eq!(verify(&first)["valid"], true);
    assert_eq!(verify(&second)["valid"], true);
    let text = run(&["keys", "reroll", &id, "--grace", "0"], None);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text).contains("The old secret is refused now."),
        "{}",
        stdout(&text)
    );
    let third = stdout(&text).lines().last().unwrap().to_owned();
    assert_eq!(verify(&second)["reason"], "token-rotated");
    assert_eq!(verify(&third)["valid"], true);

    // Disable and enable.
    assert!(
        run(&["keys", "disable", &id, "--actor", "carol"], None)
            .status
            .success()
    );
    assert_eq!(verify(&third)["reason"], "token-disabled");
    let listed = json(&run(&["keys", "list", "--format", "json"], None));
    assert_eq!(listed[0]["status"], "disabled");
    let again = json(&run(&["keys", "disable", &id, "--format", "json"], None));
    assert_eq!(again["changed"], false);
    assert!(run(&["keys", "enable", &id, "--actor", "carol"], None).status.success());
    assert_eq!(verify(&third)["valid"], true);

    // Delete: gone, the trail kept, with every actor and no secret.
    let deleted = json(&run(
        &["keys", "delete", &id, "--actor", "dave", "--format", "json"],
        None,
    ));
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(verify(&third)["reason"], "unknown-token");
    let history = run(&["keys", "history", &id, "--format", "json"], None);
    let events = json(&history);
    let trail: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    let os_user = trail[2].1.clone();
    let expected: Vec<(String, String)> = [
        ("create", "alice"),
        ("update", "bob"),
        ("reroll", os_user.as_str()),
        ("reroll", os_user.as_str()),
        ("disable", "carol"),
        ("enable", "carol"),
        ("delete", "dave"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into()))
    .collect();
    assert_eq!(trail, expected);
    assert_eq!(events[1]["changes"]["name"]["to"], "ci-2");
    for secret in [&first, &second, &third] {
        assert!(!stdout(&history).contains(secret.as_str()));
    }
    let table = run(&["keys", "history", &id], None);
    assert!(
        stdout(&table).contains("ACTION") && stdout(&table).contains("carol"),
        "{}",
        stdout(&table)
    );

    // Bad input: exit code 2, one line saying what to fix.
    let other = json(&run(
        &["keys", "create", "--subject", "user_1", "--format", "json"],
        None,
    ));
    let other = other["id"].as_str().unwrap().to_owned();
    for (args, says) in [
        (
            vec!["keys", "update", "ak_00000000000000000000000000000000", "--name", "x"],
            "no key with id",
        ),
        (
            vec!["keys", "disable", "ak_00000000000000000000000000000000"],
            "no key with id",
        ),
        (
            vec!["keys", "history", "ak_00000000000000000000000000000000"],
            "no key with id",
        ),
        (vec!["keys", "reroll", &other, "--grace", "soon"], "not a duration"),
        (vec!["keys", "reroll", &other, "--grace", "60d"], "at most 30 days"),
        (vec!["keys", "reroll", &other], "--grace"),
        (
            vec!["keys", "update", &other, "--scope", "a", "--add-scope", "b"],
            "cannot be used with",
        ),
        (vec!["keys", "update", &other], "nothing to update"),
        (
            vec!["keys", "update", &other, "--add-scope", "bad scope"],
            "not a valid scope",
        ),
        (vec!["keys", "update", &other, "--name", "x", "--actor", ""], "actor"),
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

/// A key's own rate limit: set at creation, changed and removed with `keys update`; a rate
/// that is not one is exit code 2.
#[test]
fn keys_carry_a_rate_limit_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let db = ["--database", url.as_str()];
    let run = |args: &[&str]| tokengate(dir.path(), &[args, &db].concat(), None);
    let created = json(&run(&[
        "keys",
        "create",
        "--subject",
        "user_1",
        "--rate-limit",
        "20/min",
        "--format",
        "json",
    ]));
    assert_eq!(created["rate_limit"], "20/min");
    let id = created["id"].as_str().unwrap();
    let changed = json(&run(&["keys", "update", id, "--rate-limit", "5/s", "--format", "json"]));
    assert_eq!(changed["rate_limit"], "5/s");
    let removed = json(&run(&["keys", "update", id, "--no-rate-limit", "--format", "json"]));
    assert_eq!(removed["rate_limit"], serde_json::Value::Null);
    let bad = run(&["keys", "create", "--subject", "user_1", "--rate-limit", "20/week"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not a rate"), "{}", stderr(&bad));
}
