//! Fills an SQLite key database with many valid API keys for the slow-path benchmarks
//! (`bench/slow_path.sh`) and prints their secrets, one a line.
//!
//! ```text
//! cargo run --release --example bench_keys -- keys.db 300000 > secrets.txt
//! ```
//!
//! The keys belong to the example server's demo user (`user_demo`), so its development mode
//! starts on a database where that user has every one of them. The rows are written in one
//! transaction (a few seconds for 300 000); the secrets are generated like any key's, the ids
//! are as unrelated to the order of creation as `issue`'s random ones. The secrets are printed
//! in the order of creation: `bench/slow_path.sh` shuffles them (keys used in no particular order).

use std::process::ExitCode;

use tokengate::keys::{KeyKind, Secret, SqliteKeyStore};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, count] = args.as_slice() else {
        eprintln!("usage: bench_keys DATABASE_FILE COUNT   (prints the secrets of COUNT new keys)");
        return ExitCode::from(2);
    };
    match fill(path, count).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
async fn fill(path: &str, count: &str) -> Result<(), String> {
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT must be a number, got {count:?}"))?;
    // Opening the store creates the file and the key tables.
    SqliteKeyStore::open(path)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let mut db = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let tx = db.transaction().map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(count * 48);
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO tokengate_keys (id, kind, secret_hash, name, subject, scopes, claims, created_at, seq) \
                 VALUES (?1, 'api_key', ?2, 'bench', 'user_demo', '[\"read:users\"]', '{}', ?3, 1)",
            )
            .map_err(|e| e.to_string())?;
        for i in 0..count {
            let secret = Secret::generate(KeyKind::ApiKey).map_err(|e| format!("no randomness: {e}"))?;
            let hash = secret.hash();
            // Unrelated to the order of creation, like the random ids `issue` gives: `i` times an
            // odd constant, a different id for every `i`.
            let id = format!(
                "ak_{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            );
            insert
                .execute(rusqlite::params![id, &hash.as_bytes()[..], i as i64])
                .map_err(|e| e.to_string())?;
            out.push_str(secret.expose());
            out.push('\n');
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    print!("{out}");
    Ok(())
}
