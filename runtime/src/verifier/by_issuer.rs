//! [`ByIssuer`]: JWTs sent to the verifier of their `iss`, for a resource that trusts several
//! authorization servers.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Credential, Verifier, VerifyError, VerifyFuture, sealed};
use crate::auth::Auth;
use crate::classify::TokenFormat;
use crate::rejection::InvalidReason;

/// Sends each JWT to the verifier of the issuer its `iss` names (each with its own keys,
/// discovery and rules, e.g. a [`JwtVerifier::oauth_from_issuer`](crate::JwtVerifier::oauth_from_issuer)
/// per authorization server). A JWT from an issuer not listed is refused (`401 invalid_token`,
/// `wrong-issuer`) before any verifier runs, so it never causes a key fetch.
///
/// The `iss` read here is not yet verified: it only chooses the verifier, which checks the
/// signature with that issuer's keys and the issuer itself again. Opaque tokens are refused
/// (`wrong-token-type`); put a `ByIssuer` behind [`ByFormat::jwt`](super::ByFormat::jwt) to
/// introspect them.
///
/// ```
/// use std::sync::Arc;
/// use tokengate_runtime::verifier::{ByIssuer, StaticVerifier};
///
/// let oauth = ByIssuer::new()
///     .issuer("https://auth.example.com", Arc::new(StaticVerifier::new()))
///     .issuer("https://login.partner.example", Arc::new(StaticVerifier::new()));
/// assert_eq!(oauth.issuers().count(), 2);
/// ```
#[derive(Default)]
pub struct ByIssuer {
    verifiers: Vec<(String, Arc<dyn Verifier>)>,
}

impl ByIssuer {
    /// No issuer is accepted yet.
    pub fn new() -> ByIssuer {
        ByIssuer::default()
    }

    /// Sends JWTs whose `iss` is exactly `issuer` to `verifier` (replacing an earlier one).
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, verifier: Arc<dyn Verifier>) -> ByIssuer {
        let issuer = issuer.into();
        self.verifiers.retain(|(known, _)| *known != issuer);
        self.verifiers.push((issuer, verifier));
        self
    }

    /// The issuers, in the order given.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.verifiers.iter().map(|(issuer, _)| issuer.as_str())
    }

    /// The verifier of the credential's issuer, or why there is none.
    fn route(&self, credential: &Credential<'_>) -> Result<&Arc<dyn Verifier>, VerifyError> {
        if credential.format() != TokenFormat::Jwt {
            return Err(VerifyError::Invalid(InvalidReason::WrongType));
        }
        let issuer = unverified_issuer(credential.token()).ok_or(VerifyError::Invalid(InvalidReason::WrongIssuer))?;
        self.verifiers
            .iter()
            .find(|(known, _)| *known == issuer)
            .map(|(_, verifier)| verifier)
            .ok_or(VerifyError::Invalid(InvalidReason::WrongIssuer))
    }
}

/// The `iss` of a compact JWT's payload, without verifying anything; `None` when the payload
/// does not decode or has no string `iss`.
fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Peek>(&json).ok()?.iss
}

impl fmt::Debug for ByIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.verifiers.iter().map(|(issuer, v)| (issuer, v.name())))
            .finish()
    }
}

impl Verifier for ByIssuer {
    fn verify<'a>(&'a self, credential: Credential<'a>) -> VerifyFuture<'a> {
        match self.route(&credential) {
            Ok(verifier) => verifier.verify(credential),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn verify_cached_sealed(
        &self,
        credential: &Credential<'_>,
        seal: sealed::Seal,
    ) -> Option<Result<Auth, VerifyError>> {
        match self.route(credential) {
            Ok(verifier) => verifier.verify_cached_sealed(credential, seal),
            // Known at once: no future, no fetch.
            Err(e) => Some(Err(e)),
        }
    }

    fn recall_jwt_sealed(&self, token: &str, seal: sealed::Seal) -> Option<Auth> {
        let issuer = unverified_issuer(token)?;
        let (_, verifier) = self.verifiers.iter().find(|(known, _)| *known == issuer)?;
        verifier.recall_jwt_sealed(token, seal)
    }

    fn name(&self) -> &'static str {
        "by-issuer"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthInfo;
    use crate::token::TokenType;
    use crate::verifier::{SEAL, StaticVerifier};

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn each_issuer_reaches_its_own_verifier_and_no_other() {
        let (a_token, b_token) = (jwt(r#"{"iss":"https://a"}"#), jwt(r#"{"iss":"https://b"}"#));
        let a = Arc::new(StaticVerifier::new().with_token(a_token.clone(), AuthInfo::new(TokenType::OAuthToken)));
        let b = Arc::new(StaticVerifier::new().with_token(b_token.clone(), AuthInfo::new(TokenType::OAuthToken)));
        let by = ByIssuer::new()
            .issuer("https://a", a.clone())
            .issuer("https://b", b.clone());
        let verify = |t: &str| block_on(by.verify(Credential::new_for_tests(t, TokenType::OAuthToken)));
        assert!(verify(&a_token).is_ok());
        assert!(verify(&b_token).is_ok());
        assert_eq!((a.calls(), b.calls()), (1, 1));
        let wrong_issuer = Err(VerifyError::Invalid(InvalidReason::WrongIssuer));
        for unknown in [
            jwt(r#"{"iss":"https://c"}"#),
            jwt(r#"{"iss":"https://a/"}"#),
            jwt(r#"{"sub":"x"}"#),
            jwt(r#"{"iss":7}"#),
            "e30.!!!.c2ln".to_owned(),
        ] {
            assert_eq!(verify(&unknown).map(|_| ()), wrong_issuer, "{unknown}");
            let credential = Credential::new_for_tests(&unknown, TokenType::OAuthToken);
            assert_eq!(
                by.verify_cached_sealed(&credential, SEAL).map(|r| r.map(|_| ())),
                Some(wrong_issuer.clone())
            );
        }
        // Refused before any verifier was asked.
        assert_eq!((a.calls(), b.calls()), (1, 1));
        assert_eq!(
            verify("oat_opaque").map(|_| ()),
            Err(VerifyError::Invalid(InvalidReason::WrongType))
        );
    }
}
