//! DPoP proofs (RFC 9449 §4.3): the checks of one `DPoP` header against its request and its
//! access token.
//!
//! Every check of §4.3, in the order it is made:
//!
//! 1. exactly one `DPoP` header, at most [`MAX_PROOF_BYTES`];
//! 2. a compact JWS whose header and payload are JSON objects;
//! 3. `typ` is `dpop+jwt`;
//! 4. `alg` is one of the configured asymmetric algorithms ([`DpopConfig::algorithms`]; `none`
//!    and HMAC are refused when configuring);
//! 5. `jwk` is a public key of that algorithm's type and curve, without private members
//!    (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`), and no `crit`;
//! 6. the signature verifies with that key;
//! 7. `htm` is the request's method; `htu` is the configured public URL followed by the
//!    request's path (both compared without query and fragment, scheme and host in any case,
//!    default ports dropped);
//! 8. `iat` within [`DpopConfig::max_age`] in the past (and at most [`IAT_LEEWAY_SECS`] ahead);
//! 9. a server nonce when [`DpopConfig::nonces`] is on (§8): else `use_dpop_nonce`;
//! 10. `ath` is the base64url SHA-256 of the access token;
//! 11. the token's `cnf.jkt` is the RFC 7638 thumbprint of `jwk`;
//! 12. `jti` not seen within the window: the replay cache (`binding/replay.rs`), asked last, by
//!     the gate, once the token and every other check passed.
//!
//! ```
//! use tokengate_runtime::binding::dpop::{DpopConfig, DpopVerifier};
//!
//! let dpop = DpopVerifier::new(DpopConfig::new("https://api.example.com").unwrap());
//! assert_eq!(dpop.algorithms_header(), "ES256 ES384 EdDSA RS256 PS256");
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{HeaderMap, Method, Uri};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::nonce::NonceIssuer;
use super::replay::{ReplayCache, Seen};
use crate::jwt::keys::{algorithm_name, parse_algorithm};

/// The largest `DPoP` header looked at, in bytes.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// How far in the future a proof's `iat` may be (clock skew), in seconds.
pub const IAT_LEEWAY_SECS: i64 = 5;
/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;
/// The algorithms accepted by default.
pub const DEFAULT_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Why a DPoP proof was refused (`401`, `error="invalid_dpop_proof"`; the body's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopError {
    /// No `DPoP` header.
    Missing,
    /// More than one `DPoP` header.
    Multiple,
    /// Not a compact JWS with JSON header and payload, too large, or a claim of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongTyp,
    /// `alg` is not one of the configured asymmetric algorithms.
    DisallowedAlgorithm,
    /// `jwk` is missing, private, symmetric, or not of the `alg`'s type and curve.
    BadKey,
    /// A `crit` header.
    UnsupportedCritical,
    /// The signature does not verify with `jwk`.
    BadSignature,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URL.
    WrongUrl,
    /// `iat` outside the accepted window.
    Stale,
    /// `ath` is not the hash of the access token.
    WrongTokenHash,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`).
    KeyMismatch,
    /// `jti` missing or too long.
    MissingJti,
    /// This `jti` was seen within the window.
    Replayed,
    /// The server cannot check proofs for this request (no method and URL; a configuration
    /// mistake, logged).
    Unverifiable,
}

impl DpopError {
    /// The stable machine-readable reason.
    pub const fn as_str(self) -> &'static str {
        match self {
            DpopError::Missing => "dpop-proof-missing",
            DpopError::Multiple => "dpop-proof-multiple",
            DpopError::Malformed => "dpop-proof-malformed",
            DpopError::WrongTyp => "dpop-proof-wrong-typ",
            DpopError::DisallowedAlgorithm => "dpop-proof-disallowed-algorithm",
            DpopError::BadKey => "dpop-proof-bad-key",
            DpopError::UnsupportedCritical => "dpop-proof-unsupported-critical",
            DpopError::BadSignature => "dpop-proof-bad-signature",
            DpopError::WrongMethod => "dpop-proof-wrong-method",
            DpopError::WrongUrl => "dpop-proof-wrong-url",
            DpopError::Stale => "dpop-proof-stale",
            DpopError::WrongTokenHash => "dpop-proof-wrong-token-hash",
            DpopError::KeyMismatch => "dpop-key-mismatch",
            DpopError::MissingJti => "dpop-proof-missing-jti",
            DpopError::Replayed => "dpop-proof-replayed",
            DpopError::Unverifiable => "dpop-proof-unverifiable",
        }
    }

    /// What is wrong and how to fix it, for the body's `message`.
    pub const fn message(self) -> &'static str {
        match self {
            DpopError::Missing => {
                "a DPoP-bound token needs a proof: send one `DPoP` header with a proof JWT for this request"
            }
            DpopError::Multiple => "send exactly one `DPoP` header",
            DpopError::Malformed => "the DPoP proof is not a JWT with a JSON header and payload of the right types",
            DpopError::WrongTyp => "the DPoP proof's `typ` must be `dpop+jwt`",
            DpopError::DisallowedAlgorithm => {
                "the DPoP proof's `alg` is not accepted; use one the `algs` challenge lists"
            }
            DpopError::BadKey => {
                "the DPoP proof's `jwk` must be a public key (no private members) of the `alg`'s key type"
            }
            DpopError::UnsupportedCritical => {
                "the DPoP proof has critical header parameters (`crit`) this server does not understand"
            }
            DpopError::BadSignature => "the DPoP proof's signature does not verify with its `jwk`",
            DpopError::WrongMethod => "the DPoP proof's `htm` is not this request's method",
            DpopError::WrongUrl => "the DPoP proof's `htu` is not this request's URL (without query and fragment)",
            DpopError::Stale => {
                "the DPoP proof's `iat` is too old or in the future; make a fresh proof for each request"
            }
            DpopError::WrongTokenHash => "the DPoP proof's `ath` is not the base64url SHA-256 of the access token",
            DpopError::KeyMismatch => "the DPoP proof is signed with another key than the one the token is bound to",
            DpopError::MissingJti => "the DPoP proof needs a `jti` (a unique id, at most 256 bytes)",
            DpopError::Replayed => "this DPoP proof was used before; make a fresh proof for each request",
            DpopError::Unverifiable => "the server cannot check DPoP proofs for this request; see its logs",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`DpopConfig`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopConfigError {
    /// The public URL is not an absolute `http`/`https` URL without query and fragment.
    #[error(
        "DPoP public URL {0:?} must be the absolute URL clients call, `https://host[:port][/prefix]`, without query or fragment (e.g. https://api.example.com)"
    )]
    PublicUrl(String),
    /// An algorithm that is not asymmetric, or an empty list.
    #[error(
        "DPoP algorithms must be asymmetric signature algorithms (ES256, ES384, EdDSA, RS256, RS384, RS512, PS256, PS384, PS512), at least one; got {0}"
    )]
    Algorithms(String),
    /// A window of zero, or over an hour.
    #[error("the DPoP proof window (max_age) must be between 1 s and 1 hour; got {0:?}")]
    MaxAge(Duration),
    /// A replay cache too small to be of use.
    #[error("the DPoP replay cache needs room for at least 1024 proofs; got {0}")]
    ReplayCapacity(usize),
    /// A nonce key shorter than 32 bytes, or a lifetime of zero.
    #[error("DPoP nonces need a key of at least 32 bytes and a lifetime between 1 s and 1 hour")]
    Nonces,
}

/// How DPoP proofs are checked.
#[derive(Clone)]
pub struct DpopConfig {
    public_url: PublicUrl,
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    replay_capacity: usize,
    nonces: Option<(Vec<u8>, Duration)>,
}

impl fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopConfig")
            .field("public_url", &self.public_url.text)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("replay_capacity", &self.replay_capacity)
            .field("nonces", &self.nonces.as_ref().map(|(_, lifetime)| lifetime))
            .finish()
    }
}

impl DpopConfig {
    /// Proofs for requests to `public_url`, the external base URL clients call (a service
    /// behind a proxy does not see it): `htu` must be it followed by the request's path.
    /// Defaults: [`DEFAULT_ALGORITHMS`], a 60 s window, room for 262 144 proofs, no nonces.
    pub fn new(public_url: &str) -> Result<DpopConfig, DpopConfigError> {
        Ok(DpopConfig {
            public_url: PublicUrl::parse(public_url)
                .ok_or_else(|| DpopConfigError::PublicUrl(public_url.to_owned()))?,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(60),
            replay_capacity: 1 << 18,
            nonces: None,
        })
    }

    /// The accepted signature algorithms, by JOSE name (`ES256`, `EdDSA`, `PS256`, …).
    pub fn algorithms<I, S>(mut self, names: I) -> Result<DpopConfig, DpopConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let parsed: Option<Vec<Algorithm>> = names.iter().map(|n| parse_algorithm(n)).collect();
        match parsed {
            Some(algorithms) if !algorithms.is_empty() => {
                self.algorithms = algorithms;
                Ok(self)
            }
            _ => Err(DpopConfigError::Algorithms(format!("{names:?}"))),
        }
    }

    /// How old a proof's `iat` may be (default 60 s); also how long a `jti` is remembered.
    pub fn max_age(mut self, max_age: Duration) -> Result<DpopConfig, DpopConfigError> {
        if max_age.is_zero() || max_age > Duration::from_secs(3600) {
            return Err(DpopConfigError::MaxAge(max_age));
        }
        self.max_age = max_age;
        Ok(self)
    }

    /// How many proofs the replay cache holds (default 262 144, about 17 MiB when full:
    /// SECURITY.md, "DPoP replay cache"). When it is full, proofs are refused (`503`) until
    /// entries leave their window; none is forgotten inside it.
    pub fn replay_capacity(mut self, capacity: usize) -> Result<DpopConfig, DpopConfigError> {
        if capacity < 1024 {
            return Err(DpopConfigError::ReplayCapacity(capacity));
        }
        self.replay_capacity = capacity;
        Ok(self)
    }

    /// Requires server nonces (§8): a proof without a current nonce is answered `401
    /// use_dpop_nonce` with a fresh one in `DPoP-Nonce`. A nonce is the time sealed with
    /// HMAC-SHA-256 under `key` (at least 32 bytes; the same on every instance, so no state
    /// is shared) and is accepted for `lifetime`.
    pub fn nonces(mut self, key: &[u8], lifetime: Duration) -> Result<DpopConfig, DpopConfigError> {
        if key.len() < 32 || lifetime.is_zero() || lifetime > Duration::from_secs(3600) {
            return Err(DpopConfigError::Nonces);
        }
        self.nonces = Some((key.to_vec(), lifetime));
        Ok(self)
    }
}

/// The configured external base URL, split for comparisons.
#[derive(Clone, Debug)]
struct PublicUrl {
    text: String,
    /// `scheme://host[:port]`, lower case, default port dropped.
    origin: String,
    /// The path prefix without its trailing `/` (often empty).
    prefix: String,
}

impl PublicUrl {
    fn parse(text: &str) -> Option<PublicUrl> {
        if text.contains(['?', '#']) {
            return None;
        }
        let (origin, path) = normalize(text)?;
        Some(PublicUrl {
            text: text.to_owned(),
            origin,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// `scheme://host[:port]` normalized (lower case, default port dropped) and the path of an
/// absolute `http`/`https` URL, query and fragment dropped.
fn normalize(url: &str) -> Option<(String, String)> {
    let url = url.split('#').next().unwrap_or_default();
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let origin = match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Some((origin, path.to_owned()))
}

/// The request a proof must be for.
#[derive(Clone, Copy, Debug)]
pub struct ProofTarget<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The request's URI as the server sees it (its path is used).
    pub uri: &'a Uri,
}

/// A proof that passed every check but the replay cache, which [`DpopVerifier::remember`]
/// asks once the token passed too.
#[derive(Debug)]
pub struct CheckedProof {
    jti_key: u128,
    iat: i64,
}

/// Checks DPoP proofs; holds the replay cache and the nonce key. Give it to the gate with
/// [`TokenGateBuilder::dpop`](crate::TokenGateBuilder::dpop).
pub struct DpopVerifier {
    config: DpopConfig,
    algorithms_header: String,
    replay: ReplayCache,
    nonces: Option<NonceIssuer>,
}

impl fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifier").field("config", &self.config).finish()
    }
}

impl DpopVerifier {
    /// A verifier for `config`.
    pub fn new(config: DpopConfig) -> DpopVerifier {
        let algorithms_header = config
            .algorithms
            .iter()
            .map(|a| algorithm_name(*a))
            .collect::<Vec<_>>()
            .join(" ");
        let replay = ReplayCache::new(config.replay_capacity);
        let nonces = config
            .nonces
            .as_ref()
            .map(|(key, lifetime)| NonceIssuer::new(key, *lifetime));
        DpopVerifier {
            config,
            algorithms_header,
            replay,
            nonces,
        }
    }

    /// The accepted algorithms, space-separated: the challenge's `algs`, and RFC 9728's
    /// `dpop_signing_alg_values_supported` (split at spaces).
    pub fn algorithms_header(&self) -> &str {
        &self.algorithms_header
    }

    /// The accepted algorithms' JOSE names.
    pub fn algorithm_names(&self) -> Vec<&'static str> {
        self.config.algorithms.iter().map(|a| algorithm_name(*a)).collect()
    }

    /// Whether proofs must carry a server nonce.
    pub fn requires_nonce(&self) -> bool {
        self.nonces.is_some()
    }

    /// A fresh nonce for a `DPoP-Nonce` header, when nonces are on.
    pub fn fresh_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(|n| n.issue(now_secs()))
    }

    /// The replay cache's size and capacity.
    pub fn replay_usage(&self) -> (usize, usize) {
        (self.replay.len(), self.replay.capacity())
    }

    /// Checks 1–11 of the module's list for a request with `headers` to `target`, presenting
    /// `token` bound to the key whose thumbprint is `jkt`. The `jti` is not remembered yet:
    /// call [`DpopVerifier::remember`] once everything else about the request passed.
    pub fn check(
        &self,
        headers: &HeaderMap,
        target: ProofTarget<'_>,
        token: &str,
        jkt: &str,
    ) -> Result<CheckedProof, ProofRefusal> {
        self.check_at(headers, target, token, jkt, now_secs())
    }

    /// [`DpopVerifier::check`] at `now` (seconds since the epoch).
    pub fn check_at(
        &self,
        headers: &HeaderMap,
        target: ProofTarget<'_>,
        token: &str,
        jkt: &str,
        now: i64,
    ) -> Result<CheckedProof, ProofRefusal> {
        let proof = one_proof(headers)?;
        let parsed = Parsed::split(proof)?;
        let (alg, key) = self.header_key(&parsed.header)?;
        parsed.verify_signature(alg, &key)?;
        let claims = &parsed.claims;
        let jti = string_claim(claims, "jti").ok_or(DpopError::MissingJti)?;
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(DpopError::MissingJti.into());
        }
        if string_claim(claims, "htm") != Some(target.method.as_str()) {
            return Err(DpopError::WrongMethod.into());
        }
        self.check_htu(string_claim(claims, "htu"), target.uri)?;
        let iat = claims.get("iat").and_then(Value::as_i64).ok_or(DpopError::Malformed)?;
        let max_age = i64::try_from(self.config.max_age.as_secs()).unwrap_or(i64::MAX);
        if iat > now + IAT_LEEWAY_SECS || iat < now - max_age {
            return Err(DpopError::Stale.into());
        }
        self.check_nonce(claims.get("nonce"), now)?;
        let ath = B64.encode(Sha256::digest(token.as_bytes()));
        if !constant_eq(string_claim(claims, "ath").unwrap_or_default(), &ath) {
            return Err(DpopError::WrongTokenHash.into());
        }
        if !constant_eq(&thumbprint(&parsed.header.jwk)?, jkt) {
            return Err(DpopError::KeyMismatch.into());
        }
        Ok(CheckedProof {
            jti_key: jti_key(jkt, jti),
            iat,
        })
    }

    /// Check 12: remembers the proof's `jti` until it leaves the window; a `jti` seen before
    /// is refused. `Err(None)` when the cache is full (the request is refused with `503`:
    /// a `jti` inside its window is never forgotten to make room).
    pub fn remember(&self, proof: &CheckedProof) -> Result<(), Option<DpopError>> {
        self.remember_at(proof, now_secs())
    }

    /// [`DpopVerifier::remember`] at `now`.
    pub fn remember_at(&self, proof: &CheckedProof, now: i64) -> Result<(), Option<DpopError>> {
        let max_age = i64::try_from(self.config.max_age.as_secs()).unwrap_or(i64::MAX);
        // Inside the window until `iat + max_age`; a proof from the future a little longer.
        let until = proof.iat.max(now) + max_age + IAT_LEEWAY_SECS;
        match self.replay.insert(proof.jti_key, until, now) {
            Seen::New => Ok(()),
            Seen::Before => Err(Some(DpopError::Replayed)),
            Seen::Full => Err(None),
        }
    }

    /// `alg` and `jwk` from the proof's header: checks 3–5.
    fn header_key(&self, header: &ProofHeader) -> Result<(Algorithm, jsonwebtoken::DecodingKey), ProofRefusal> {
        if !header.typ.eq_ignore_ascii_case("dpop+jwt") {
            return Err(DpopError::WrongTyp.into());
        }
        let alg = parse_algorithm(&header.alg)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or(DpopError::DisallowedAlgorithm)?;
        if header.crit {
            return Err(DpopError::UnsupportedCritical.into());
        }
        Ok((alg, public_key(&header.jwk, alg)?))
    }

    fn check_htu(&self, htu: Option<&str>, uri: &Uri) -> Result<(), ProofRefusal> {
        let (origin, path) = htu.and_then(normalize).ok_or(DpopError::WrongUrl)?;
        let url = &self.config.public_url;
        let expected_path = format!("{}{}", url.prefix, uri.path());
        if origin != url.origin || path != expected_path {
            return Err(DpopError::WrongUrl.into());
        }
        Ok(())
    }

    fn check_nonce(&self, nonce: Option<&Value>, now: i64) -> Result<(), ProofRefusal> {
        let Some(issuer) = &self.nonces else {
            return Ok(());
        };
        match nonce.and_then(Value::as_str) {
            Some(nonce) if issuer.is_valid(nonce, now) => Ok(()),
            _ => Err(ProofRefusal::UseNonce(issuer.issue(now))),
        }
    }
}

/// Why a proof was refused: a [`DpopError`], or a missing or stale server nonce (answered
/// with this fresh one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofRefusal {
    /// The proof is invalid.
    Invalid(DpopError),
    /// The proof needs the server nonce sent with the refusal.
    UseNonce(String),
}

impl From<DpopError> for ProofRefusal {
    fn from(e: DpopError) -> Self {
        ProofRefusal::Invalid(e)
    }
}

/// The one `DPoP` header's value.
fn one_proof(headers: &HeaderMap) -> Result<&str, DpopError> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next().ok_or(DpopError::Missing)?;
    if values.next().is_some() {
        return Err(DpopError::Multiple);
    }
    if first.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    first.to_str().map_err(|_| DpopError::Malformed)
}

/// The members of a proof's JOSE header that are checked.
#[derive(serde::Deserialize)]
struct ProofHeader {
    typ: String,
    alg: String,
    jwk: Map<String, Value>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    use serde::Deserialize as _;
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// A proof split into its decoded header and claims, with what its signature covers.
struct Parsed<'a> {
    header: ProofHeader,
    claims: Map<String, Value>,
    signed: &'a str,
    signature: &'a str,
}

impl<'a> Parsed<'a> {
    fn split(proof: &'a str) -> Result<Parsed<'a>, DpopError> {
        let mut segments = proof.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(DpopError::Malformed);
        };
        let header_json = B64.decode(header).map_err(|_| DpopError::Malformed)?;
        let claims_json = B64.decode(payload).map_err(|_| DpopError::Malformed)?;
        let header: ProofHeader = serde_json::from_slice(&header_json).map_err(|_| DpopError::Malformed)?;
        let claims: Map<String, Value> = serde_json::from_slice(&claims_json).map_err(|_| DpopError::Malformed)?;
        Ok(Parsed {
            header,
            claims,
            signed: &proof[..header_len(proof)],
            signature,
        })
    }

    fn verify_signature(&self, alg: Algorithm, key: &jsonwebtoken::DecodingKey) -> Result<(), DpopError> {
        match jsonwebtoken::crypto::verify(self.signature, self.signed.as_bytes(), key, alg) {
            Ok(true) => Ok(()),
            _ => Err(DpopError::BadSignature),
        }
    }
}

/// The length of `header.payload` in a proof with three segments.
fn header_len(proof: &str) -> usize {
    proof.rfind('.').unwrap_or(proof.len())
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// The members a public JWK must not have (RFC 7518 §6: private and symmetric key members).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The public key of `jwk`, if it is one of `alg`'s type (and curve).
fn public_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<jsonwebtoken::DecodingKey, DpopError> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::BadKey);
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(DpopError::BadKey);
    let kty = member("kty")?;
    let key = match (alg, kty) {
        (Algorithm::ES256 | Algorithm::ES384, "EC") => {
            let curve = if alg == Algorithm::ES256 { "P-256" } else { "P-384" };
            if member("crv")? != curve {
                return Err(DpopError::BadKey);
            }
            jsonwebtoken::DecodingKey::from_ec_components(member("x")?, member("y")?)
        }
        (Algorithm::EdDSA, "OKP") if member("crv")? == "Ed25519" => {
            jsonwebtoken::DecodingKey::from_ed_components(member("x")?)
        }
        (
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
            "RSA",
        ) => {
            // At least 2048 bits: 256 bytes of modulus, 342 base64url characters.
            if member("n")?.len() < 342 {
                return Err(DpopError::BadKey);
            }
            jsonwebtoken::DecodingKey::from_rsa_components(member("n")?, member("e")?)
        }
        _ => return Err(DpopError::BadKey),
    };
    key.map_err(|_| DpopError::BadKey)
}

/// The RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required members in
/// lexicographic order, without white space.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, DpopError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .map(|v| Value::String(v.to_owned()).to_string())
            .ok_or(DpopError::BadKey)
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, member("e")?, member("n")?),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, member("crv")?, member("x")?),
        _ => return Err(DpopError::BadKey),
    };
    Ok(B64.encode(Sha256::digest(canonical.as_bytes())))
}

/// The replay cache's key of a proof: the first 128 bits of SHA-256 over the key's
/// thumbprint and the `jti` (a `jti` need only be unique per key).
fn jti_key(jkt: &str, jti: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(jkt.as_bytes());
    hasher.update([0]);
    hasher.update(jti.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk: Map<String, Value> = serde_json::from_str(r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn public_urls() {
        assert!(PublicUrl::parse("https://api.example.com").is_some());
        assert!(PublicUrl::parse("https://api.example.com/v1/").is_some());
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://x?a=1",
            "https://x#f",
            "https://u@x",
            "",
        ] {
            assert!(PublicUrl::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            normalize("HTTPS://API.Example.com:443/a/b?q=1#f").unwrap(),
            ("https://api.example.com".to_owned(), "/a/b".to_owned())
        );
        assert_eq!(normalize("http://h:8080").unwrap().0, "http://h:8080");
    }

    #[test]
    fn configuration_refuses_symmetric_and_none() {
        let config = || DpopConfig::new("https://api.example.com").unwrap();
        for bad in [&["HS256"][..], &["none"], &[], &["ES256", "HS512"]] {
            assert!(config().algorithms(bad.iter().copied()).is_err(), "{bad:?}");
        }
        assert!(config().algorithms(["ES256"]).is_ok());
        assert!(config().max_age(Duration::ZERO).is_err());
        assert!(config().replay_capacity(10).is_err());
        assert!(config().nonces(b"short", Duration::from_secs(60)).is_err());
    }
}
