//! The compact JWS of a JWT: its three segments, the checks of its JOSE header, and its
//! signature.
//!
//! A header is refused before any key is looked up when it carries `crit`, names an `alg`
//! the token's kind does not allow, a `typ` another kind of token carries, a Clerk `cat`
//! another class carries (`token-category-mismatch`, [`super::category`]), or a `kid` longer
//! than a key's can be. Its `jku`, `x5u`, `jwk` and `x5c` are never read.

use std::borrow::Cow;

use jsonwebtoken::Algorithm;
use serde::Deserialize as _;

use super::category::Category;
use super::keys::{AlgorithmSet, KeySet, Lookup, MAX_KID_LEN, parse_algorithm};
use super::malformed;
use crate::classify::is_access_token_typ;
use crate::rejection::InvalidReason;
use crate::token::TokenType;
use crate::verifier::VerifyError;

/// The parts of a JOSE header that are used. `jku`, `x5u`, `jwk`, `x5c` are never read.
#[derive(serde::Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) cat: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

impl<'a> Header<'a> {
    /// Parses a decoded header: a JSON object, nothing but white space before its `{`.
    pub(super) fn parse(json: &'a [u8]) -> Result<Header<'a>, VerifyError> {
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(malformed());
        }
        serde_json::from_slice(json).map_err(|_| malformed())
    }

    /// The header's algorithm, if the header suits a token of `token_type`: no `crit`, an
    /// allowed `alg`, the `typ` of that type, a `cat` that type may carry (when
    /// `check_category`), a `kid` no longer than a key's can be.
    pub(super) fn check(
        &self,
        algorithms: &AlgorithmSet,
        token_type: TokenType,
        check_category: bool,
    ) -> Result<Algorithm, VerifyError> {
        if self.crit {
            return Err(InvalidReason::UnsupportedCritical.into());
        }
        let alg = parse_algorithm(&self.alg).ok_or(InvalidReason::DisallowedAlgorithm)?;
        if !algorithms.contains(alg) {
            return Err(InvalidReason::DisallowedAlgorithm.into());
        }
        if !typ_suits(self.typ.as_deref(), token_type) {
            return Err(InvalidReason::WrongType.into());
        }
        if check_category && !Category::of(self.cat.as_deref()).suits(token_type) {
            return Err(InvalidReason::CategoryMismatch.into());
        }
        if self.kid.as_deref().is_some_and(|k| k.len() > MAX_KID_LEN) {
            return Err(InvalidReason::UnknownKey.into());
        }
        Ok(alg)
    }
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Whether a header's `typ` is one a token of `token_type` may carry.
fn typ_suits(typ: Option<&str>, token_type: TokenType) -> bool {
    match token_type {
        TokenType::SessionToken => typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT")),
        TokenType::OAuthToken => typ.is_some_and(is_access_token_typ),
        _ => typ.is_none_or(|t| t.eq_ignore_ascii_case("JWT") || is_access_token_typ(t)),
    }
}

/// A compact JWS, split at its two dots into three base64url segments.
pub(super) struct Segments<'t> {
    pub(super) header: &'t str,
    pub(super) payload: &'t str,
    signature: &'t str,
    /// `header.payload`: what the signature covers.
    signed: &'t str,
}

impl<'t> Segments<'t> {
    /// Splits `token`; a token without exactly three segments is malformed.
    pub(super) fn split(token: &'t str) -> Result<Segments<'t>, VerifyError> {
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(malformed());
        };
        Ok(Segments {
            header,
            payload,
            signature,
            signed: &token[..header.len() + 1 + payload.len()],
        })
    }

    /// Checks the signature with the key of `keys` for `kid`, bound to `alg`.
    pub(super) fn check_signature(&self, keys: &KeySet, kid: Option<&str>, alg: Algorithm) -> Result<(), VerifyError> {
        let key = match keys.find(kid, alg) {
            Lookup::Found(key) => key,
            Lookup::AlgorithmNotAllowed => return Err(InvalidReason::DisallowedAlgorithm.into()),
            Lookup::NotFound => return Err(InvalidReason::UnknownKey.into()),
        };
        match jsonwebtoken::crypto::verify(self.signature, self.signed.as_bytes(), &key.key, alg) {
            Ok(true) => Ok(()),
            Ok(false) => Err(InvalidReason::BadSignature.into()),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Base64(_)) => Err(malformed()),
            Err(_) => Err(InvalidReason::BadSignature.into()),
        }
    }
}
