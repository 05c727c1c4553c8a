//! DPoP server nonces (RFC 9449 §8) that need no state shared between instances: the time
//! of issue, sealed with HMAC-SHA-256 under a key every instance is configured with.
//!
//! A nonce is `base64url(issued_at as 8 big-endian bytes ‖ first 16 bytes of
//! HMAC-SHA-256(key, "tokengate-dpop-nonce" ‖ issued_at))`: 32 characters. It is accepted
//! while `issued_at` is within its lifetime (and not in the future beyond a few seconds of
//! clock skew between instances). Its freshness, not its single use, is what it proves; the
//! replay cache keeps each proof single-use.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use std::time::Duration;

const CONTEXT: &[u8] = b"tokengate-dpop-nonce";
const TAG_BYTES: usize = 16;
const SKEW_SECS: i64 = 5;

/// Issues and checks sealed nonces.
pub(crate) struct NonceIssuer {
    key: hmac::Key,
    lifetime: i64,
}

impl NonceIssuer {
    pub(crate) fn new(key: &[u8], lifetime: Duration) -> NonceIssuer {
        NonceIssuer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            lifetime: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        }
    }

    fn tag(&self, issued_at: i64) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(CONTEXT);
        context.update(&issued_at.to_be_bytes());
        context.sign()
    }

    /// A nonce issued at `now`.
    pub(crate) fn issue(&self, now: i64) -> String {
        let mut bytes = [0u8; 8 + TAG_BYTES];
        bytes[..8].copy_from_slice(&now.to_be_bytes());
        bytes[8..].copy_from_slice(&self.tag(now).as_ref()[..TAG_BYTES]);
        B64.encode(bytes)
    }

    /// Whether `nonce` is one of ours, issued within its lifetime before `now`.
    pub(crate) fn is_valid(&self, nonce: &str, now: i64) -> bool {
        use subtle::ConstantTimeEq as _;
        let Ok(bytes) = B64.decode(nonce) else {
            return false;
        };
        let Ok(bytes) = <[u8; 8 + TAG_BYTES]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&bytes[..8]);
        let issued_at = i64::from_be_bytes(issued);
        let sealed = bool::from(bytes[8..].ct_eq(&self.tag(issued_at).as_ref()[..TAG_BYTES]));
        sealed && issued_at <= now + SKEW_SECS && now.saturating_sub(issued_at) <= self.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_sealed_and_expire() {
        let a = NonceIssuer::new(&[1; 32], Duration::from_secs(300));
        let b = NonceIssuer::new(&[2; 32], Duration::from_secs(300));
        let nonce = a.issue(1_000);
        assert_eq!(nonce.len(), 32);
        assert!(a.is_valid(&nonce, 1_000));
        assert!(a.is_valid(&nonce, 1_300));
        assert!(!a.is_valid(&nonce, 1_301), "expired");
        assert!(!a.is_valid(&nonce, 900), "from the future");
        assert!(!b.is_valid(&nonce, 1_000), "another key");
        // Another instance with the same key accepts it: no shared state.
        assert!(NonceIssuer::new(&[1; 32], Duration::from_secs(300)).is_valid(&nonce, 1_010));
        let mut forged = a.issue(5_000).into_bytes();
        forged[..11].copy_from_slice(&nonce.as_bytes()[..11]);
        assert!(!a.is_valid(std::str::from_utf8(&forged).unwrap_or_default(), 1_000));
        assert!(!a.is_valid("not a nonce", 1_000));
    }
}
