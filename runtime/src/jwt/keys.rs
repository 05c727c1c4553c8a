//! Public keys for JWT verification: a [`KeySet`] from a PEM public key, a JWK or a JWKS,
//! given as text or as a file (Clerk's `jwtKey`), and the algorithms each key may verify.
//!
//! A key verifies only the algorithms it is bound to: a JWK's `alg` binds it to that one
//! algorithm, an EC key to its curve's algorithm, and an RSA key without `alg` to the RSA
//! algorithms the verifier allows. RSA keys under 2048 bits, symmetric keys (`kty: oct`) and
//! keys marked `use: enc` are refused.
//!
//! ```
//! use tokengate_runtime::jwt::KeySet;
//!
//! let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256",
//!   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
//!   "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
//!   {"kty":"oct","k":"c2VjcmV0","kid":"hmac"}]}"#;
//! let keys = KeySet::from_jwks(jwks).unwrap();
//! assert_eq!(keys.len(), 1, "the symmetric key is skipped");
//! assert_eq!(keys.kids().collect::<Vec<_>>(), [Some("k1")]);
//! ```

use std::fmt;
use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// At most this many keys are read from one JWKS; the rest are ignored.
pub const MAX_KEYS: usize = 100;

/// The longest `kid` a key or a token may carry; longer ones are never looked up.
pub const MAX_KID_LEN: usize = 256;

/// A set of signature algorithms, as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgorithmSet(u16);

/// Every asymmetric algorithm jsonwebtoken supports, in a fixed order.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);
    /// RS256, RS384, RS512: Clerk's session tokens.
    pub const RSA_PKCS1: AlgorithmSet = AlgorithmSet(0b111);
    /// Every RSA algorithm (PKCS#1 v1.5 and PSS).
    pub const RSA: AlgorithmSet = AlgorithmSet(0b11_1111);
    /// Every asymmetric algorithm (RSA, ECDSA P-256/P-384, EdDSA).
    pub const ASYMMETRIC: AlgorithmSet = AlgorithmSet(0b1_1111_1111);

    fn bit(alg: Algorithm) -> u16 {
        ASYMMETRIC.iter().position(|a| *a == alg).map_or(0, |i| 1 << i)
    }

    /// The set of `algs`. Symmetric (HS*) algorithms are never part of a set.
    pub fn of(algs: &[Algorithm]) -> AlgorithmSet {
        AlgorithmSet(algs.iter().fold(0, |acc, a| acc | Self::bit(*a)))
    }

    /// Whether the set holds `alg`.
    pub fn contains(self, alg: Algorithm) -> bool {
        let bit = Self::bit(alg);
        bit != 0 && self.0 & bit != 0
    }

    /// The algorithms in both sets.
    #[must_use]
    pub fn intersection(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        ASYMMETRIC.into_iter().filter(move |a| self.contains(*a))
    }

    fn of_family(family: AlgorithmFamily) -> AlgorithmSet {
        match family {
            AlgorithmFamily::Rsa => AlgorithmSet::RSA,
            AlgorithmFamily::Ec => AlgorithmSet::of(&[Algorithm::ES256, Algorithm::ES384]),
            AlgorithmFamily::Ed => AlgorithmSet::of(&[Algorithm::EdDSA]),
            AlgorithmFamily::Hmac => AlgorithmSet::EMPTY,
        }
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Parses a JOSE `alg` name. `none`, symmetric and unknown names give `None`.
pub(crate) fn parse_algorithm(name: &str) -> Option<Algorithm> {
    ASYMMETRIC.into_iter().find(|a| algorithm_name(*a) == name)
}

/// The JOSE name of an algorithm.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

/// Why a key could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is neither a PEM public key nor a JWK or JWKS.
    #[error(
        "the key is neither a PEM public key (-----BEGIN PUBLIC KEY-----) nor a JWK or JWKS in JSON; \
         pass the instance's public key (Clerk: the `PEM Public Key` or `JWKS URL` of the API keys page)"
    )]
    UnrecognizedFormat,
    /// The PEM does not hold a usable public key.
    #[error("the PEM does not hold a supported public key (RSA, EC P-256/P-384 or Ed25519): {0}")]
    InvalidPem(String),
    /// The key is a private key.
    #[error("the PEM holds a private key; give tokengate only the public key")]
    PrivateKey,
    /// An RSA key under 2048 bits.
    #[error("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    WeakRsaKey {
        /// The key's size.
        bits: usize,
    },
    /// The JWKS holds no usable key.
    #[error(
        "the JWKS holds no usable signing key ({skipped} skipped: symmetric, `use: enc`, weak, unsupported or malformed)"
    )]
    NoUsableKey {
        /// How many keys were skipped.
        skipped: usize,
    },
    /// The JSON is not a JWK or JWKS.
    #[error("invalid JWK/JWKS JSON: {0}")]
    InvalidJson(String),
    /// The key cannot be used with the requested algorithm.
    #[error("the key cannot verify {0}; choose an algorithm of the key's family")]
    AlgorithmMismatch(&'static str),
    /// The file could not be read.
    #[error("cannot read key file {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// One public key and the algorithms it may verify.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// What a lookup in a [`KeySet`] found.
pub(crate) enum Lookup<'a> {
    /// A key bound to the algorithm.
    Found(&'a VerifyingKey),
    /// Keys match the `kid`, but none may verify this algorithm.
    AlgorithmNotAllowed,
    /// No key matches the `kid`.
    NotFound,
}

/// A set of public keys. Cheap to look up; immutable once built.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid` of each key (`None` for a PEM key, which matches any token).
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// Auto-detects the text: a PEM public key, a JWK or a JWKS.
    pub fn from_text(text: &str) -> Result<KeySet, KeyError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with("-----BEGIN") {
            KeySet::from_pem(text)
        } else if trimmed.starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| KeyError::InvalidJson(e.to_string()))?;
            if value.get("keys").is_some() {
                KeySet::from_jwks(text)
            } else {
                KeySet::from_jwk(text)
            }
        } else {
            Err(KeyError::UnrecognizedFormat)
        }
    }

    /// Reads a file holding a PEM public key, a JWK or a JWKS.
    pub fn from_file(path: impl AsRef<Path>) -> Result<KeySet, KeyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        KeySet::from_text(&text)
    }

    /// One PEM public key (`-----BEGIN PUBLIC KEY-----`, or PKCS#1 `RSA PUBLIC KEY`), with no
    /// `kid`: it verifies tokens whatever their `kid`, as Clerk's networkless `jwtKey` does.
    pub fn from_pem(pem: &str) -> Result<KeySet, KeyError> {
        Ok(KeySet {
            keys: vec![pem_key(pem)?],
        })
    }

    /// A PEM public key bound to one algorithm.
    pub fn from_pem_for(pem: &str, alg: Algorithm) -> Result<KeySet, KeyError> {
        let mut key = pem_key(pem)?;
        if !key.algorithms.contains(alg) {
            return Err(KeyError::AlgorithmMismatch(algorithm_name(alg)));
        }
        key.algorithms = AlgorithmSet::of(&[alg]);
        Ok(KeySet { keys: vec![key] })
    }

    /// One JWK (a JSON object with `kty`).
    pub fn from_jwk(json: &str) -> Result<KeySet, KeyError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| KeyError::InvalidJson(e.to_string()))?;
        let key = jwk_key(&value).map_err(|e| match e {
            JwkSkip::Weak(bits) => KeyError::WeakRsaKey { bits },
            JwkSkip::Unusable => KeyError::NoUsableKey { skipped: 1 },
        })?;
        Ok(KeySet { keys: vec![key] })
    }

    /// A JWKS (`{"keys": [...]}`). Unusable keys are skipped; the set must keep at least one.
    pub fn from_jwks(json: &str) -> Result<KeySet, KeyError> {
        let (set, skipped) = KeySet::parse_jwks(json.as_bytes())?;
        if set.is_empty() {
            return Err(KeyError::NoUsableKey { skipped });
        }
        Ok(set)
    }

    /// Parses a JWKS leniently: every unusable key is skipped and counted.
    pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<(KeySet, usize), KeyError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(bytes).map_err(|e| KeyError::InvalidJson(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for value in doc.keys.iter().take(MAX_KEYS) {
            match jwk_key(value) {
                Ok(key) => keys.push(key),
                Err(_) => skipped += 1,
            }
        }
        skipped += doc.keys.len().saturating_sub(MAX_KEYS);
        Ok((KeySet { keys }, skipped))
    }

    /// Finds the key for a token's `kid` and `alg`. A key with a `kid` matches only that
    /// `kid`; a key without one (a PEM key) matches any token. Keys with a matching `kid`
    /// are preferred.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let mut matched = false;
        let exact = self.keys.iter().filter(|k| kid.is_some() && k.kid.as_deref() == kid);
        let unnamed = self.keys.iter().filter(|k| k.kid.is_none());
        for key in exact.chain(unnamed) {
            matched = true;
            if key.algorithms.contains(alg) {
                return Lookup::Found(key);
            }
        }
        if matched {
            Lookup::AlgorithmNotAllowed
        } else {
            Lookup::NotFound
        }
    }

    /// Whether both sets hold the same keys (by `kid`, algorithms and key material).
    #[cfg(feature = "jwks")]
    pub(crate) fn same_keys(&self, other: &KeySet) -> bool {
        fn fingerprint(k: &VerifyingKey) -> (Option<&str>, AlgorithmSet, String) {
            let material = Jwk::from_decoding_key(&k.key, None)
                .ok()
                .and_then(|j| j.thumbprint(ThumbprintHash::SHA256).ok())
                .unwrap_or_default();
            (k.kid.as_deref(), k.algorithms, material)
        }
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| fingerprint(a) == fingerprint(b))
    }
}

/// Why a JWK was skipped.
enum JwkSkip {
    Weak(usize),
    Unusable,
}

fn jwk_key(value: &serde_json::Value) -> Result<VerifyingKey, JwkSkip> {
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|_| JwkSkip::Unusable)?;
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err(JwkSkip::Unusable);
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops
            .iter()
            .any(|op| matches!(op, jsonwebtoken::jwk::KeyOperations::Verify))
    {
        return Err(JwkSkip::Unusable);
    }
    let kid = match &jwk.common.key_id {
        Some(kid) if kid.len() > MAX_KID_LEN => return Err(JwkSkip::Unusable),
        other => other.clone(),
    };
    let family_algs = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD.decode(&rsa.n).map_err(|_| JwkSkip::Unusable)?;
            URL_SAFE_NO_PAD.decode(&rsa.e).map_err(|_| JwkSkip::Unusable)?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(JwkSkip::Weak(bits));
            }
            AlgorithmSet::RSA
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => AlgorithmSet::of(&[Algorithm::ES256]),
            EllipticCurve::P384 => AlgorithmSet::of(&[Algorithm::ES384]),
            _ => return Err(JwkSkip::Unusable),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            AlgorithmSet::of(&[Algorithm::EdDSA])
        }
        _ => return Err(JwkSkip::Unusable),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family_algs,
        Some(alg) => {
            let bound = key_algorithm(alg).ok_or(JwkSkip::Unusable)?;
            if !family_algs.contains(bound) {
                return Err(JwkSkip::Unusable);
            }
            AlgorithmSet::of(&[bound])
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| JwkSkip::Unusable)?;
    Ok(VerifyingKey { kid, algorithms, key })
}

/// A JWK `alg` that is a signature algorithm we support.
fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    parse_algorithm(&alg.to_string())
}

fn modulus_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

fn pem_key(pem: &str) -> Result<VerifyingKey, KeyError> {
    if pem.contains("PRIVATE KEY") {
        return Err(KeyError::PrivateKey);
    }
    let bytes = pem.as_bytes();
    let key = DecodingKey::from_rsa_pem(bytes)
        .or_else(|_| DecodingKey::from_ec_pem(bytes))
        .or_else(|_| DecodingKey::from_ed_pem(bytes))
        .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
    let algorithms = match key.family() {
        AlgorithmFamily::Rsa => {
            let jwk = Jwk::from_decoding_key(&key, None).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
            let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                return Err(KeyError::InvalidPem("not an RSA key".into()));
            };
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(KeyError::WeakRsaKey { bits });
            }
            AlgorithmSet::RSA
        }
        AlgorithmFamily::Ec => {
            let point = key
                .try_get_as_bytes()
                .map_err(|e| KeyError::InvalidPem(e.to_string()))?;
            match point.len() {
                65 => AlgorithmSet::of(&[Algorithm::ES256]),
                97 => AlgorithmSet::of(&[Algorithm::ES384]),
                _ => return Err(KeyError::InvalidPem("unsupported elliptic curve".into())),
            }
        }
        family => AlgorithmSet::of_family(family),
    };
    Ok(VerifyingKey {
        kid: None,
        algorithms,
        key,
    })
}

/// Builds a JWKS document (`{"keys":[jwk]}`) from a PEM public key, to serve from a
/// development server. `kid` defaults to the key's RFC 7638 thumbprint.
///
/// ```
/// # use tokengate_runtime::jwt::{jwks_from_pem, Algorithm};
/// // With a real key: `let jwks = jwks_from_pem(&pem, None, Algorithm::RS256)?;`
/// assert!(jwks_from_pem("not a key", None, Algorithm::RS256).is_err());
/// ```
pub fn jwks_from_pem(pem: &str, kid: Option<&str>, alg: Algorithm) -> Result<serde_json::Value, KeyError> {
    let key = pem_key(pem)?;
    if !key.algorithms.contains(alg) {
        return Err(KeyError::AlgorithmMismatch(algorithm_name(alg)));
    }
    let mut jwk = Jwk::from_decoding_key(&key.key, Some(alg)).map_err(|e| KeyError::InvalidPem(e.to_string()))?;
    let kid = match kid {
        Some(kid) => kid.to_owned(),
        None => jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| KeyError::InvalidPem(e.to_string()))?,
    };
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let jwk = serde_json::to_value(&jwk).map_err(|e| KeyError::InvalidJson(e.to_string()))?;
    Ok(serde_json::json!({ "keys": [jwk] }))
}

/// The keys in use, and where they came from.
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    /// The last successful fetch (`None`: never loaded, or static keys).
    #[cfg_attr(not(feature = "jwks"), expect(dead_code, reason = "static keys are never fetched"))]
    pub(crate) fetched_at: Option<Instant>,
    /// Changes whenever the key material changes.
    pub(crate) generation: u64,
}

impl Snapshot {
    pub(crate) fn fixed(keys: KeySet) -> Snapshot {
        Snapshot {
            keys,
            fetched_at: None,
            generation: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_sets() {
        assert!(AlgorithmSet::RSA_PKCS1.contains(Algorithm::RS256));
        assert!(!AlgorithmSet::RSA_PKCS1.contains(Algorithm::PS256));
        assert!(!AlgorithmSet::ASYMMETRIC.contains(Algorithm::HS256));
        assert!(AlgorithmSet::of(&[Algorithm::HS256]).is_empty());
        assert_eq!(parse_algorithm("none"), None);
        assert_eq!(parse_algorithm("HS256"), None);
        assert_eq!(parse_algorithm("ES256"), Some(Algorithm::ES256));
    }

    #[test]
    fn modulus_size() {
        assert_eq!(modulus_bits(&[0, 0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    #[test]
    fn text_detection() {
        assert_eq!(KeySet::from_text("hello").unwrap_err(), KeyError::UnrecognizedFormat);
        assert!(matches!(
            KeySet::from_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(KeyError::PrivateKey)
        ));
        assert!(matches!(
            KeySet::from_text(r#"{"keys":[]}"#),
            Err(KeyError::NoUsableKey { skipped: 0 })
        ));
    }
}
