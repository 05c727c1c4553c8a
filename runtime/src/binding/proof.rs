//! Making DPoP proofs, the client's side (RFC 9449 §4.2): an ES256 key and the proofs it
//! signs. For clients written in Rust, tests, and `tokengate dpop proof`.
//!
//! ```
//! use tokengate_runtime::binding::proof::DpopKey;
//!
//! let key = DpopKey::generate().unwrap();
//! let proof = key.proof("POST", "https://api.example.com/api/transfers", Some("the-access-token"), None).unwrap();
//! assert_eq!(proof.split('.').count(), 3);
//! assert_eq!(key.thumbprint().len(), 43);
//! ```

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::dpop::{now_secs, thumbprint};

/// Why a key could not be made or read, or a proof not signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofKeyError(String);

/// An ES256 (P-256) key that signs DPoP proofs. Its `Debug` output never shows the private key.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    jwk: Map<String, Value>,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey").field("jkt", &self.thumbprint()).finish()
    }
}

impl DpopKey {
    /// A new random key.
    pub fn generate() -> Result<DpopKey, ProofKeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| ProofKeyError("could not generate a P-256 key".into()))?;
        DpopKey::from_pkcs8_der(pkcs8.as_ref())
    }

    /// A key from a PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`, a P-256 key).
    pub fn from_pkcs8_pem(text: &str) -> Result<DpopKey, ProofKeyError> {
        let parsed = pem::parse(text).map_err(|e| ProofKeyError(format!("not a PEM key: {e}")))?;
        DpopKey::from_pkcs8_der(parsed.contents())
    }

    /// A key from PKCS#8 DER bytes.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<DpopKey, ProofKeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| ProofKeyError("not a PKCS#8 P-256 (ES256) private key".into()))?;
        // The public key is the uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(ProofKeyError("unexpected P-256 public key encoding".into()));
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..]),
        });
        let Value::Object(jwk) = jwk else {
            return Err(ProofKeyError("unexpected JWK".into()));
        };
        Ok(DpopKey {
            pair,
            pkcs8: der.to_vec(),
            jwk,
        })
    }

    /// The private key as PKCS#8 PEM, to keep it in a file.
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()))
    }

    /// The public key as a JWK (the proofs' `jwk` header).
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.jwk
    }

    /// The RFC 7638 thumbprint: what a token bound to this key carries as `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.jwk).unwrap_or_default()
    }

    /// A proof for `method` and `url` (its query and fragment left out, RFC 9449 §4.2), now, with a random
    /// `jti`; with `ath` for `access_token` and the server's `nonce` when given.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ProofKeyError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| ProofKeyError("no randomness for the jti".into()))?;
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            // RFC 9449 §4.2: the target URI without query and fragment.
            "htu": url.split(['?', '#']).next().unwrap_or_default(),
            "iat": now_secs(),
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(B64.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        self.sign(&header, &claims)
    }

    /// Signs any header and claims with this key (ES256): for tests that need a proof with a
    /// chosen mistake.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, ProofKeyError> {
        let signed = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .map_err(|_| ProofKeyError("signing failed".into()))?;
        Ok(format!("{signed}.{}", B64.encode(signature.as_ref())))
    }
}
