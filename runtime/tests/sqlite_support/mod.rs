//! What the SQLite key-store and key-verifier tests share: a store on a fresh file, and a
//! verification through the `Verifier` trait.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokengate_runtime::keys::{KeyVerifier, SqliteKeyStore};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::{Credential, Verifier};
use tokengate_runtime::{TokenType, VerifyError};

/// The database file of a test's temporary directory.
pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keys.db")
}

/// The SQLite store at `path`.
pub async fn open(path: &Path) -> Arc<SqliteKeyStore> {
    Arc::new(SqliteKeyStore::open(path).await.unwrap())
}

/// `secret` verified as `token_type`, the way the gate calls a verifier.
pub async fn verify(
    verifier: &KeyVerifier,
    secret: &str,
    token_type: TokenType,
) -> Result<tokengate_runtime::Auth, VerifyError> {
    verifier.verify(Credential::new_for_tests(secret, token_type)).await
}

/// The refusal for `reason`.
pub fn invalid(reason: InvalidReason) -> VerifyError {
    VerifyError::Invalid(reason)
}
