//! The PostgreSQL store with several verifiers on one database, as several server instances
//! would run: revocations reach every instance through `LISTEN/NOTIFY` well within the cache
//! TTL, a dropped notification connection comes back, and a stopped database is a `503` for
//! uncached keys while cached keys keep working, with recovery without a restart. Through a
//! counting proxy: an uncached key is one round-trip (no connection check before a busy
//! connection's query).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokengate_runtime::keys::postgres::CHECK_CONNECTIONS_IDLE_FOR;
use tokengate_runtime::keys::{KeySpec, KeyStore, KeyVerifier, PostgresKeyStore, PostgresOptions, now_unix};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::VerifyError;

mod pg_support;

/// Far longer than any wait below: a test passing proves the notice, not the TTL, evicted.
const LONG_TTL: Duration = Duration::from_secs(600);
/// What "about a second" means here.
const PROPAGATION: Duration = Duration::from_millis(1500);

async fn store(url: &str) -> Arc<PostgresKeyStore> {
    let options = PostgresOptions::new().acquire_timeout(Duration::from_secs(1));
    Arc::new(PostgresKeyStore::connect_with(url, options).await.unwrap())
}

fn verifier(store: &Arc<PostgresKeyStore>) -> KeyVerifier {
    KeyVerifier::builder(store.clone())
        .cache_ttl(LONG_TTL)
        .negative_cache_ttl(LONG_TTL)
        .build()
        .unwrap()
}

/// The backends listening for revocations on the database `url` names.
async fn listeners(admin: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %' \
         AND pid <> pg_backend_pid()",
    )
    .fetch_all(admin)
    .await
    .unwrap()
}

/// Waits until `count` listeners run (other than `except`), for at most `within`.
async fn wait_for_listeners(admin: &sqlx::PgPool, count: usize, except: &[i32], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let now: Vec<i32> = listeners(admin)
            .await
            .into_iter()
            .filter(|p| !except.contains(p))
            .collect();
        if now.len() >= count {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{count} revocation listener(s) expected within {within:?}; found {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `secret` is refused as revoked; returns how long it took.
async fn until_revoked(verifier: &KeyVerifier, secret: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match verifier.verify_secret(secret).await {
            Err(VerifyError::Invalid(InvalidReason::Revoked)) => return started.elapsed(),
            Ok(_) => {}
            Err(e) => panic!("expected the key to verify, then be refused as revoked; got {e:?}"),
        }
        assert!(
            started.elapsed() < within,
            "the revocation was not seen within {within:?} (cache TTL {LONG_TTL:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_evicts_the_key_on_every_instance() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let (store_a, store_b) = (store(&url).await, store(&url).await);
    let (a, b) = (verifier(&store_a), verifier(&store_b));
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    wait_for_listeners(&admin, 2, &[], Duration::from_secs(5)).await;

    // Through a verifier: cached in both, revoked through A, refused by B within ~1 s.
    let key = a.issue(KeySpec::api_key("user_1", "shared")).await.unwrap();
    let secret = key.secret.expose();
    a.verify_secret(secret).await.unwrap();
    b.verify_secret(secret).await.unwrap();
    a.revoke(&key.record.id, Some("leaked")).await.unwrap().unwrap();
    assert!(matches!(
        a.verify_secret(secret).await,
        Err(VerifyError::Invalid(InvalidReason::Revoked))
    ));
    let took = until_revoked(&b, secret, PROPAGATION).await;
    eprintln!("revocation seen by the other instance after {took:?}");

    // Through the store alone (what the CLI does): both instances evict it.
    let key = a.issue(KeySpec::m2m_token("mch_1", "worker")).await.unwrap();
    let secret = key.secret.expose();
    a.verify_secret(secret).await.unwrap();
    b.verify_secret(secret).await.unwrap();
    let cli = store(&url).await;
    cli.revoke(&key.record.id, None, now_unix()).await.unwrap().unwrap();
    until_revoked(&a, secret, PROPAGATION).await;
    until_revoked(&b, secret, PROPAGATION).await;

    // Plain SQL that shortens a key's life is announced too.
    let key = a.issue(KeySpec::api_key("user_2", "ops")).await.unwrap();
    let secret = key.secret.expose();
    b.verify_secret(secret).await.unwrap();
    sqlx::query("UPDATE tokengate_keys SET expires_at = $1 WHERE id = $2")
        .bind(now_unix() - 1)
        .bind(&key.record.id)
        .execute(&admin)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        match b.verify_secret(secret).await {
            Err(VerifyError::Invalid(InvalidReason::Expired)) => break,
            Ok(_) => assert!(started.elapsed() < PROPAGATION, "the expiry change was not seen"),
            Err(e) => panic!("unexpected {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Writing last_used_at is no change a cache must forget: no notice is sent for it.
    let key = a.issue(KeySpec::api_key("user_3", "busy")).await.unwrap();
    b.verify_secret(key.secret.expose()).await.unwrap();
    let mut spy = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    spy.listen("tokengate_key_revoked").await.unwrap();
    assert!(b.flush().await.unwrap() >= 1);
    let last_used = store_b.get(&key.record.id).await.unwrap().unwrap().last_used_at;
    assert!(last_used.is_some());
    let heard = tokio::time::timeout(Duration::from_millis(500), spy.recv()).await;
    assert!(
        heard.is_err(),
        "a last_used_at write sent a revocation notice: {heard:?}"
    );
    // …while a revocation does (the spy is a working listener).
    a.revoke(&key.record.id, None).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(2), spy.recv()).await;
    let hex: String = key
        .secret
        .hash()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(heard.unwrap().unwrap().payload(), hex);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Log lines written while the test runs (on its thread: the runtime is single-threaded).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_notification_connection_reconnects_and_evicts_again() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let store_b = store(&url).await;
    let b = verifier(&store_b);
    let writer = store(&url).await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let before = wait_for_listeners(&admin, 1, &[], Duration::from_secs(5)).await;

    // The key is cached; then the listener's connection is killed by the server.
    let key = tokengate_runtime::keys::issue(&*writer, KeySpec::api_key("user_1", "k"))
        .await
        .unwrap();
    let secret = key.secret.expose();
    b.verify_secret(secret).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
        .bind(&before)
        .fetch_all(&admin)
        .await
        .unwrap();
    assert_eq!(killed, [true]);

    // It comes back on a new connection (the cache is cleared then: notices may have been
    // missed), and revocations reach the verifier again within ~1 s.
    wait_for_listeners(&admin, 1, &before, Duration::from_secs(10)).await;
    b.verify_secret(secret).await.unwrap();
    writer.revoke(&key.record.id, None, now_unix()).await.unwrap();
    until_revoked(&b, secret, PROPAGATION).await;
    b.shutdown().await.unwrap();

    // The loss and the recovery were both logged, at target tokengate::keys.
    let text = logs.text();
    let lost = text
        .lines()
        .find(|l| l.contains("revocation listener") && (l.contains("lost") || l.contains("failed")))
        .unwrap_or_else(|| panic!("no log line for the lost connection in:\n{text}"));
    assert!(lost.contains("WARN") && lost.contains("tokengate::keys"), "{lost}");
    assert!(lost.contains("cache TTL"), "{lost}");
    let back = text
        .lines()
        .find(|l| l.contains("revocation listener reconnected"))
        .unwrap_or_else(|| panic!("no log line for the reconnection in:\n{text}"));
    assert!(back.contains("INFO"), "{back}");
    assert!(!text.contains(secret), "a secret was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_keeps_cached_keys_refuses_others_with_503_and_recovers() {
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let url = pg_support::create_database(&cluster.url()).await;
    let (store_a, store_b) = (store(&url).await, store(&url).await);
    let (a, b) = (verifier(&store_a), verifier(&store_b));
    let cached = a.issue(KeySpec::api_key("user_1", "cached")).await.unwrap();
    let uncached = a.issue(KeySpec::api_key("user_1", "uncached")).await.unwrap();
    a.verify_secret(cached.secret.expose()).await.unwrap();
    b.verify_secret(cached.secret.expose()).await.unwrap();

    cluster.stop();

    for v in [&a, &b] {
        let auth = v.verify_secret(cached.secret.expose()).await.unwrap();
        assert_eq!(auth.user_id.as_deref(), Some("user_1"));
        let started = Instant::now();
        let err = v.verify_secret(uncached.secret.expose()).await.unwrap_err();
        assert!(matches!(err, VerifyError::Unavailable { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the 503 took {:?}",
            started.elapsed()
        );
    }
    // Writing last_used_at fails softly and is kept for later.
    assert!(a.flush().await.is_err());

    cluster.restart();

    // Without restarting anything: the uncached key verifies once the database is back…
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match b.verify_secret(uncached.secret.expose()).await {
            Ok(_) => break,
            Err(VerifyError::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the database came back but verification still fails: {e:?}"),
        }
    }
    // …the pending last_used_at times are written…
    assert_eq!(a.flush().await.unwrap(), 1);
    // …and the listeners are back: a revocation through A reaches B within ~1 s.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    wait_for_listeners(&admin, 2, &[], Duration::from_secs(15)).await;
    b.verify_secret(cached.secret.expose()).await.unwrap();
    a.revoke(&cached.record.id, None).await.unwrap().unwrap();
    until_revoked(&b, cached.secret.expose(), PROPAGATION).await;
    admin.close().await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_is_a_503_after_the_query_timeout() {
    let Some((_cluster, url)) = pg_support::database().await else {
        return;
    };
    let options = PostgresOptions::new().query_timeout(Duration::from_millis(500));
    let store = Arc::new(PostgresKeyStore::connect_with(&url, options).await.unwrap());
    let v = verifier(&store);
    let key = v.issue(KeySpec::api_key("user_1", "k")).await.unwrap();

    // Another session holds the key table locked (a stuck migration, a long maintenance job).
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE tokengate_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let started = Instant::now();
    let err = v.verify_secret(key.secret.expose()).await.unwrap_err();
    assert!(matches!(err, VerifyError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    lock.rollback().await.unwrap();
    // Released: the same verifier answers again.
    v.verify_secret(key.secret.expose()).await.unwrap();
    v.shutdown().await.unwrap();
}

/// What a client sent on one connection through [`counting_proxy`]: its turns, each the bytes
/// it sent before the server next answered.
#[derive(Default)]
struct Exchanges {
    turns: Vec<Vec<u8>>,
    client_spoke_last: bool,
}

/// A TCP proxy on loopback in front of `upstream`, recording each connection's turns: how many
/// round-trips a client makes, and what it sends in each.
async fn counting_proxy(upstream: std::net::SocketAddr) -> (u16, Arc<std::sync::Mutex<Vec<Exchanges>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::Mutex::new(Vec::<Exchanges>::new()));
    let all = connections.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let index = {
                let mut all = all.lock().unwrap();
                all.push(Exchanges::default());
                all.len() - 1
            };
            let ((mut client_in, mut client_out), (mut server_in, mut server_out)) =
                (client.into_split(), server.into_split());
            let to_server = all.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = client_in.read(&mut buf).await {
                    {
                        let mut all = to_server.lock().unwrap();
                        let exchanges = &mut all[index];
                        if !exchanges.client_spoke_last {
                            exchanges.turns.push(Vec::new());
                            exchanges.client_spoke_last = true;
                        }
                        exchanges.turns.last_mut().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if server_out.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
            let to_client = all.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = server_in.read(&mut buf).await {
                    to_client.lock().unwrap()[index].client_spoke_last = false;
                    if client_out.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

/// A PostgreSQL message whose type byte is `kind`, at the start of `bytes`.
fn starts_with_message(bytes: &[u8], kind: u8) -> bool {
    bytes.first() == Some(&kind)
}

/// Each connection's number of turns so far.
fn turn_counts(connections: &std::sync::Mutex<Vec<Exchanges>>) -> Vec<usize> {
    connections.lock().unwrap().iter().map(|c| c.turns.len()).collect()
}

/// The turns of each connection that had any since `before` ([`turn_counts`]).
fn turns_since(connections: &std::sync::Mutex<Vec<Exchanges>>, before: &[usize]) -> Vec<Vec<Vec<u8>>> {
    connections
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| c.turns[before.get(i).copied().unwrap_or(0)..].to_vec())
        .filter(|turns| !turns.is_empty())
        .collect()
}

/// PostgreSQL's `Sync` message, alone: how sqlx checks a connection.
const SYNC: &[u8] = b"S\0\0\0\x04";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncached_key_is_one_round_trip_to_postgres() {
    use tokengate_runtime::keys::{KeyKind, NewKey, Secret};
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let direct = pg_support::create_database(&cluster.url()).await;
    let (address, database) = direct
        .strip_prefix("postgres://postgres@")
        .unwrap()
        .split_once('/')
        .unwrap();
    let (port, connections) = counting_proxy(address.parse().unwrap()).await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/{database}");
    let store = PostgresKeyStore::connect_with(&url, PostgresOptions::new())
        .await
        .unwrap();
    let hash = Secret::generate(KeyKind::ApiKey).unwrap().hash();
    let key = NewKey::new(
        "ak_1".into(),
        KeyKind::ApiKey,
        hash,
        "k".into(),
        "user_1".into(),
        vec![],
        now_unix(),
        None,
    );
    store.create(key).await.unwrap();
    // Each pooled connection prepares the lookup the first time it runs it (one more exchange).
    for _ in 0..4 {
        assert!(store.find_to_verify(&hash).await.unwrap().is_some());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = turn_counts(&connections);
    assert!(store.find_to_verify(&hash).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let used = turns_since(&connections, &before);
    assert_eq!(used.len(), 1, "one connection answered the lookup");
    // The query itself (Bind, Execute, Sync in one write), then sqlx's check as the connection
    // goes back to the pool, after the answer: no check before it.
    let turns = &used[0];
    assert_eq!(
        turns.len(),
        2,
        "the lookup and the check on release, nothing more: {turns:?}"
    );
    assert!(
        starts_with_message(&turns[0], b'B'),
        "the lookup starts with its Bind: {:?}",
        turns[0]
    );
    assert_eq!(turns[1], SYNC, "then only a Sync");

    // A connection idle for a while is checked before the lookup uses it.
    tokio::time::sleep(CHECK_CONNECTIONS_IDLE_FOR + Duration::from_millis(200)).await;
    let before = turn_counts(&connections);
    assert!(store.find_to_verify(&hash).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let used = turns_since(&connections, &before);
    let turns = used.concat();
    assert_eq!(turns.len(), 3, "check, lookup, check on release: {turns:?}");
    assert_eq!(turns[0], SYNC);
    assert!(starts_with_message(&turns[1], b'B'));
    store.close().await;
}
