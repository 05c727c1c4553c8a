//! GitHub's secret-scanning signing keys: fetched from the meta API, kept an hour, fetched again
//! at most once a minute for a key id nobody knows (so forged ids cannot make tokengate hammer
//! GitHub's API), and checked with ECDSA P-256 / SHA-256 over the raw request body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// How long fetched keys are used before they are fetched again.
pub(super) const REFRESH_AFTER: Duration = Duration::from_secs(3600);
/// The least time between two fetches made for an unknown key id.
pub(super) const UNKNOWN_ID_COOLDOWN: Duration = Duration::from_secs(60);
/// The largest key list read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The keys, by `key_identifier`, as SubjectPublicKeyInfo DER.
#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Vec<u8>>,
    fetched: Option<Instant>,
}

/// Why a signature was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// GitHub lists no key with that id (after fetching the list again, when allowed).
    UnknownKey,
    /// The signature does not verify, or is not base64.
    BadSignature,
    /// The key list could not be fetched.
    Unavailable(String),
}

pub(super) struct GithubKeys {
    url: reqwest::Url,
    client: reqwest::Client,
    token: Option<String>,
    snapshot: ArcSwap<Snapshot>,
    /// One fetch at a time; holds when the last one started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl GithubKeys {
    pub(super) fn new(url: reqwest::Url, client: reqwest::Client, token: Option<String>) -> GithubKeys {
        GithubKeys {
            url,
            client,
            token,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    /// Checks `signature` (base64 DER, `Github-Public-Key-Signature`) of `body` with the key
    /// `key_id` (`Github-Public-Key-Identifier`).
    pub(super) async fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> Result<(), Refusal> {
        use base64::Engine as _;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Refusal::BadSignature)?;
        let key = self.key(key_id).await?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key[..])
            .verify(body, &signature)
            .map_err(|_| Refusal::BadSignature)
    }

    async fn key(&self, key_id: &str) -> Result<Vec<u8>, Refusal> {
        let known = |s: &Snapshot| s.keys.get(key_id).cloned();
        let current = self.snapshot.load_full();
        let fresh = current.fetched.is_some_and(|at| at.elapsed() < REFRESH_AFTER);
        if fresh && let Some(key) = known(&current) {
            return Ok(key);
        }
        let mut last = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let current = self.snapshot.load_full();
        let fresh = current.fetched.is_some_and(|at| at.elapsed() < REFRESH_AFTER);
        if let Some(key) = known(&current).filter(|_| fresh) {
            return Ok(key);
        }
        if fresh && last.is_some_and(|at| at.elapsed() < UNKNOWN_ID_COOLDOWN) {
            return Err(Refusal::UnknownKey);
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let snapshot = Arc::new(Snapshot {
                    keys,
                    fetched: Some(Instant::now()),
                });
                self.snapshot.store(Arc::clone(&snapshot));
                known(&snapshot).ok_or(Refusal::UnknownKey)
            }
            // Keys fetched earlier still serve while GitHub's API is down.
            Err(_) if known(&current).is_some() => known(&current).ok_or(Refusal::UnknownKey),
            Err(e) => Err(Refusal::Unavailable(e)),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Vec<u8>>, String> {
        let mut request = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("tokengate/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("cannot fetch GitHub's secret-scanning keys from {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!(
                "GitHub's secret-scanning keys at {} answered {}",
                self.url,
                response.status()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(format!("GitHub's key list is larger than {MAX_RESPONSE_BYTES} bytes"));
            }
        }
        parse_keys(&body)
    }
}

#[derive(serde::Deserialize)]
struct KeyList {
    public_keys: Vec<ListedKey>,
}

#[derive(serde::Deserialize)]
struct ListedKey {
    key_identifier: String,
    key: String,
}

/// The meta API's answer: `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`.
/// Keys that are not PEM public keys are skipped.
fn parse_keys(body: &[u8]) -> Result<HashMap<String, Vec<u8>>, String> {
    let list: KeyList =
        serde_json::from_slice(body).map_err(|e| format!("GitHub's key list is not the documented JSON: {e}"))?;
    Ok(list
        .public_keys
        .into_iter()
        .filter_map(|k| {
            let parsed = pem::parse(k.key.as_bytes()).ok()?;
            (parsed.tag() == "PUBLIC KEY").then(|| (k.key_identifier, parsed.into_contents()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_are_read_as_documented() {
        let body = br#"{"public_keys":[
            {"key_identifier":"a","key":"-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n","is_current":true},
            {"key_identifier":"b","key":"not pem","is_current":false}]}"#;
        let keys = parse_keys(body).unwrap();
        assert_eq!(keys.get("a"), Some(&vec![0, 1, 2]));
        assert!(!keys.contains_key("b"));
        assert!(parse_keys(b"[]").unwrap_err().contains("documented JSON"));
    }
}
