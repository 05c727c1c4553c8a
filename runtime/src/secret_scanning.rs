//! Leaked keys: GitHub's secret-scanning partner program. GitHub posts the tokens of your
//! format it finds in public code to an endpoint of yours, signed with ECDSA P-256; this is
//! that endpoint. It checks the signature with GitHub's published keys
//! (`/meta/public_keys/secret_scanning`, fetched and kept like a JWKS), looks each token up by
//! its hash, revokes the key (or only records the report: [`OnLeak`]), writes the report in the
//! key's audit trail, and answers in GitHub's format: `[{"token_hash", "token_type", "label"}]`,
//! `true_positive` for a token that is (or was) one of your keys, `false_positive` otherwise.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::Response, routing::post};
//! use tokengate_runtime::keys::{KeyVerifier, open_store};
//! use tokengate_runtime::secret_scanning::SecretScanning;
//!
//! async fn leaks(State(scanning): State<SecretScanning>, headers: HeaderMap, body: Bytes) -> Response {
//!     scanning.handle(&headers, &body).await
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = Arc::new(KeyVerifier::new(open_store("sqlite://keys.db").await?));
//! let scanning = SecretScanning::builder(keys).build()?;
//! let app: Router = Router::new().route("/github/secret-scanning", post(leaks)).with_state(scanning);
//! # Ok(()) }
//! ```
//!
//! The endpoint is public (GitHub holds no token of yours): the signature is its authentication,
//! checked before the body is read as JSON. A token never appears in a log or in the answer
//! (only its SHA-256, which GitHub asks for).

mod github_keys;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::jwt::jwks::{check_url, http_client};
use crate::keys::{KeyChange, KeyVerifier, SecretHash, check_secret};

use self::github_keys::{GithubKeys, Refusal};

/// Where GitHub publishes its secret-scanning keys.
pub const GITHUB_META_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// The actor the audit trail records for reports.
pub const ACTOR: &str = "github-secret-scanning";

/// What to do with a key GitHub found in public.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnLeak {
    /// Revoke the key (the default: a secret in public code is compromised). When the secret
    /// found is the one a reroll replaced, only that secret's grace period ends.
    #[default]
    Revoke,
    /// Only record the report in the key's audit trail.
    Record,
}

/// Settings of a [`SecretScanning`] endpoint.
#[must_use]
pub struct SecretScanningBuilder {
    keys: Arc<KeyVerifier>,
    meta_url: String,
    github_token: Option<String>,
    on_leak: OnLeak,
    timeout: Duration,
}

impl SecretScanningBuilder {
    /// Where GitHub's keys are fetched (default [`GITHUB_META_URL`]; `https`, or `http` on
    /// loopback for tests).
    pub fn meta_url(mut self, url: impl Into<String>) -> Self {
        self.meta_url = url.into();
        self
    }

    /// A GitHub token sent with the key fetch, to stay clear of the API's rate limit for
    /// anonymous callers (no scope needed).
    pub fn github_token(mut self, token: impl Into<String>) -> Self {
        self.github_token = Some(token.into());
        self
    }

    /// What to do with a leaked key (default [`OnLeak::Revoke`]).
    pub fn on_leak(mut self, on_leak: OnLeak) -> Self {
        self.on_leak = on_leak;
        self
    }

    /// The longest a key fetch may take (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the URL and builds the endpoint.
    pub fn build(self) -> Result<SecretScanning, String> {
        let url = check_url(&self.meta_url, false).map_err(|_| {
            format!(
                "`{}` is not an absolute https URL (plain http only on loopback, for tests); GitHub's is {GITHUB_META_URL}",
                self.meta_url
            )
        })?;
        let client = http_client(self.timeout, url.scheme() == "https").map_err(|e| e.to_string())?;
        Ok(SecretScanning(Arc::new(Inner {
            keys: self.keys,
            github: GithubKeys::new(url, client, self.github_token),
            on_leak: self.on_leak,
        })))
    }
}

/// GitHub's secret-scanning endpoint; see the [module](self) docs. Cheap to clone.
#[derive(Clone)]
pub struct SecretScanning(Arc<Inner>);

struct Inner {
    keys: Arc<KeyVerifier>,
    github: GithubKeys,
    on_leak: OnLeak,
}

/// One match GitHub reports.
#[derive(serde::Deserialize)]
struct Match {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
}

impl SecretScanning {
    /// An endpoint revoking leaked keys of `keys`, with GitHub's keys from [`GITHUB_META_URL`].
    pub fn builder(keys: Arc<KeyVerifier>) -> SecretScanningBuilder {
        SecretScanningBuilder {
            keys,
            meta_url: GITHUB_META_URL.into(),
            github_token: None,
            on_leak: OnLeak::default(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Answers one POST from GitHub: `401` for a missing or bad signature or an unknown key id,
    /// `400` for a body that is not GitHub's JSON, `503` when GitHub's keys or the key store
    /// cannot be reached (GitHub sends again), else `200` with one label per match.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(key_id), Some(signature)) = (
            header("github-public-key-identifier"),
            header("github-public-key-signature"),
        ) else {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "missing Github-Public-Key-Identifier or -Signature",
            );
        };
        match self.0.github.verify(key_id, signature, body).await {
            Ok(()) => {}
            Err(Refusal::UnknownKey) => return refusal(StatusCode::UNAUTHORIZED, "unknown GitHub key identifier"),
            Err(Refusal::BadSignature) => return refusal(StatusCode::UNAUTHORIZED, "the signature does not verify"),
            Err(Refusal::Unavailable(e)) => {
                tracing::warn!(target: "tokengate::secret_scanning", error = %e, "cannot fetch GitHub's keys");
                return refusal(StatusCode::SERVICE_UNAVAILABLE, "GitHub's keys cannot be fetched now");
            }
        }
        let Ok(matches) = serde_json::from_slice::<Vec<Match>>(body) else {
            return refusal(
                StatusCode::BAD_REQUEST,
                "the body is not a JSON array of {token, type, url, source}",
            );
        };
        match self.label_all(&matches).await {
            Ok(labels) => Json(labels).into_response(),
            Err(e) => {
                tracing::warn!(target: "tokengate::secret_scanning", error = %e, "cannot process a leak report");
                refusal(StatusCode::SERVICE_UNAVAILABLE, "the key store is unavailable")
            }
        }
    }

    /// GitHub's label for each match, acting on those that are keys of ours (once per token).
    async fn label_all(&self, matches: &[Match]) -> Result<Vec<Value>, String> {
        let mut labels = Vec::with_capacity(matches.len());
        let mut seen: HashMap<SecretHash, bool> = HashMap::new();
        for m in matches {
            let hash = SecretHash::of(&m.token);
            let ours = match seen.get(&hash) {
                Some(ours) => *ours,
                None => {
                    let ours = self
                        .report(&m.token, &hash, m.url.as_deref().unwrap_or_default())
                        .await?;
                    seen.insert(hash, ours);
                    ours
                }
            };
            let label = if ours { "true_positive" } else { "false_positive" };
            labels.push(json!({ "token_hash": hash.to_hex(), "token_type": m.token_type, "label": label }));
        }
        Ok(labels)
    }

    /// Whether `token` is a key of ours (current, rerolled, revoked or expired); if it is, the
    /// report is recorded and acted on.
    async fn report(&self, token: &str, hash: &SecretHash, url: &str) -> Result<bool, String> {
        if check_secret(token).is_err() {
            return Ok(false);
        }
        let store = self.0.keys.store();
        let Some(record) = store.find_by_hash(hash).await.map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let previous = !record.secret_hash.ct_eq(hash);
        let change = KeyChange::ReportLeak {
            previous,
            url: url.chars().take(2048).collect(),
            revoke: self.0.on_leak == OnLeak::Revoke,
        };
        let changed = self
            .0
            .keys
            .change(&record.id, &change, ACTOR)
            .await
            .map_err(|e| e.to_string())?;
        let done = changed
            .and_then(|c| c.event)
            .map(|e| e.changes["done"].as_str().unwrap_or_default().to_owned());
        tracing::warn!(
            target: "tokengate::secret_scanning",
            key_id = %record.id, url, done = done.as_deref().unwrap_or("deleted meanwhile"),
            "GitHub secret scanning found a key in public"
        );
        Ok(true)
    }
}

impl std::fmt::Debug for SecretScanning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanning")
            .field("on_leak", &self.0.on_leak)
            .finish_non_exhaustive()
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
