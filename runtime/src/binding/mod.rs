//! Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).
//!
//! A token whose confirmation claim (`cnf`, RFC 7800 — in a JWT's claims or in an
//! introspection response) binds it to a key is useless without that key:
//!
//! - `cnf.jkt` (DPoP): the request must say `Authorization: DPoP <token>` and carry a `DPoP`
//!   proof signed by the key whose RFC 7638 thumbprint is `jkt` ([`dpop`]);
//! - `cnf."x5t#S256"` (mutual TLS): the request must come with the client certificate whose
//!   SHA-256 is `x5t#S256` ([`mtls`]; served by [`tls`] with the `tls` feature, or read from a
//!   trusted proxy's header).
//!
//! **A bound token is never a bearer token**: the gate checks every verified token's `cnf`
//! on every route, whatever the route declares. A DPoP-bound token sent as `Bearer` is refused
//! (`dpop-bound-token-as-bearer`), a certificate-bound one without its certificate too, and a
//! `cnf` with any other confirmation method (`kid`, `jwk`, …) is refused rather than
//! ignored (`unsupported-confirmation`). A token sent with the `DPoP` scheme that is not
//! DPoP-bound is refused (`token-not-dpop-bound`).
//!
//! A route may also *require* a binding ([`Binding`]; `#[require_dpop]`, `#[require_mtls]`):
//! then an unbound token of a type that can be bound ([`BINDABLE`]: OAuth access tokens and
//! M2M tokens) is refused as well. API keys and session tokens cannot be bound; a route that
//! accepts them alongside keeps accepting them as before.
//!
//! ```
//! use tokengate_runtime::binding::Binding;
//!
//! let both = Binding::DPOP.with(Binding::MTLS);
//! assert!(both.requires_dpop() && both.requires_mtls());
//! assert_eq!(both.to_string(), "DPoP and client certificate (mTLS)");
//! ```

use std::fmt;

use http::{Extensions, HeaderMap};
use serde_json::Value;

use crate::auth::AuthInfo;
use crate::extract::Scheme;
use crate::rejection::{InvalidReason, Rejection};
use crate::token::{TokenType, TokenTypes};

pub mod dpop;
pub mod metadata;
pub mod mtls;
mod nonce;
pub mod proof;
mod replay;
#[cfg(feature = "tls")]
pub mod tls;

pub use dpop::{DpopConfig, DpopConfigError, DpopError, DpopVerifier, ProofTarget};
pub use mtls::{ClientCertHeaderLayer, ClientCertificate};

/// The token types a binding can constrain: OAuth access tokens and M2M tokens (API keys and
/// Clerk session tokens have no `cnf`).
pub const BINDABLE: TokenTypes = TokenTypes::EMPTY.with(TokenType::OAuthToken).with(TokenType::M2mToken);

/// The bindings a route requires of the tokens it accepts that can be bound ([`BINDABLE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binding(u8);

impl Binding {
    /// No requirement (bound tokens are still checked against their binding).
    pub const NONE: Binding = Binding(0);
    /// A DPoP-bound token and its proof (`#[require_dpop]`).
    pub const DPOP: Binding = Binding(1);
    /// A certificate-bound token and its certificate (`#[require_mtls]`).
    pub const MTLS: Binding = Binding(2);

    /// Both requirements.
    #[must_use]
    pub const fn with(self, other: Binding) -> Binding {
        Binding(self.0 | other.0)
    }

    /// Whether nothing is required.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// Whether DPoP is required.
    pub const fn requires_dpop(self) -> bool {
        self.0 & Binding::DPOP.0 != 0
    }

    /// Whether a certificate binding is required.
    pub const fn requires_mtls(self) -> bool {
        self.0 & Binding::MTLS.0 != 0
    }

    /// `dpop`, `mtls`: the report's names.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.requires_dpop() {
            names.push("dpop");
        }
        if self.requires_mtls() {
            names.push("mtls");
        }
        names
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.requires_dpop() {
            parts.push("DPoP");
        }
        if self.requires_mtls() {
            parts.push("client certificate (mTLS)");
        }
        match parts.is_empty() {
            true => f.write_str("none"),
            false => f.write_str(&parts.join(" and ")),
        }
    }
}

impl serde::Serialize for Binding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// A verified token's confirmation (RFC 7800 `cnf`): what it is bound to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confirmation<'a> {
    /// `cnf.jkt`: the thumbprint of the DPoP key.
    pub jkt: Option<&'a str>,
    /// `cnf."x5t#S256"`: the SHA-256 of the client certificate.
    pub x5t_s256: Option<&'a str>,
}

impl<'a> Confirmation<'a> {
    /// The confirmation of a verified token; `Err` for a `cnf` that binds it in a way that
    /// cannot be checked here (another member, a value that is not a string, an empty `cnf`).
    pub fn of(auth: &'a AuthInfo) -> Result<Confirmation<'a>, InvalidReason> {
        let cnf = match auth.claims.get("cnf") {
            None => return Ok(Confirmation::default()),
            Some(Value::Object(cnf)) => cnf,
            Some(_) => return Err(InvalidReason::UnsupportedConfirmation),
        };
        let mut confirmation = Confirmation::default();
        for (member, value) in cnf {
            match (member.as_str(), value) {
                ("jkt", Value::String(jkt)) => confirmation.jkt = Some(jkt),
                ("x5t#S256", Value::String(x5t)) => confirmation.x5t_s256 = Some(x5t),
                _ => return Err(InvalidReason::UnsupportedConfirmation),
            }
        }
        if confirmation.is_unbound() {
            return Err(InvalidReason::UnsupportedConfirmation);
        }
        Ok(confirmation)
    }

    /// Whether the token is bound to nothing.
    pub fn is_unbound(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

/// What the gate knows of a request when it checks a verified token's binding.
#[derive(Clone, Copy)]
pub(crate) struct Presentation<'a> {
    pub(crate) token: &'a str,
    pub(crate) scheme: Scheme,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) target: Option<ProofTarget<'a>>,
}

/// Checks a verified token against its binding and the route's requirement. The DPoP
/// proof's `jti` is remembered last, once everything else passed: only holders of a valid
/// bound token can fill the replay cache.
pub(crate) fn check(
    dpop: Option<&DpopVerifier>,
    auth: &AuthInfo,
    presented: &Presentation<'_>,
    required: Binding,
) -> Result<(), Rejection> {
    let cnf = Confirmation::of(auth).map_err(Rejection::InvalidToken)?;
    let must_bind = BINDABLE.contains(auth.token_type);
    let invalid = |reason| Err(Rejection::InvalidToken(reason));
    match cnf.x5t_s256 {
        Some(x5t) => match presented.extensions.get::<ClientCertificate>() {
            None => return invalid(InvalidReason::CertificateRequired),
            Some(certificate) if !certificate.matches(x5t) => return invalid(InvalidReason::CertificateMismatch),
            Some(_) => {}
        },
        None if required.requires_mtls() && must_bind => return invalid(InvalidReason::CertificateBindingRequired),
        None => {}
    }
    match (presented.scheme, cnf.jkt) {
        (Scheme::Dpop, None) => invalid(InvalidReason::NotDpopBound),
        (Scheme::Bearer, Some(_)) => invalid(InvalidReason::DpopBoundAsBearer),
        (Scheme::Bearer, None) if required.requires_dpop() && must_bind => invalid(InvalidReason::DpopRequired),
        (Scheme::Bearer, None) => Ok(()),
        (Scheme::Dpop, Some(jkt)) => prove(dpop, presented, jkt),
    }
}

/// A route's requirement, for an identity an outer layer admitted (it checked the binding).
pub(crate) fn check_admitted(auth: &AuthInfo, required: Binding) -> Result<(), Rejection> {
    if required.is_none() || !BINDABLE.contains(auth.token_type) {
        return Ok(());
    }
    let cnf = Confirmation::of(auth).map_err(Rejection::InvalidToken)?;
    if required.requires_mtls() && cnf.x5t_s256.is_none() {
        return Err(Rejection::InvalidToken(InvalidReason::CertificateBindingRequired));
    }
    if required.requires_dpop() && cnf.jkt.is_none() {
        return Err(Rejection::InvalidToken(InvalidReason::DpopRequired));
    }
    Ok(())
}

/// The DPoP proof of a DPoP-bound token: checked, then its `jti` remembered.
fn prove(dpop: Option<&DpopVerifier>, presented: &Presentation<'_>, jkt: &str) -> Result<(), Rejection> {
    let (Some(dpop), Some(target)) = (dpop, presented.target) else {
        return Err(unverifiable(dpop.is_none()));
    };
    let proof = dpop
        .check(presented.headers, target, presented.token, jkt)
        .map_err(|refusal| match refusal {
            dpop::ProofRefusal::Invalid(e) => Rejection::InvalidDpopProof(e),
            dpop::ProofRefusal::UseNonce(nonce) => Rejection::UseDpopNonce { nonce },
        })?;
    dpop.remember(&proof).map_err(|refusal| match refusal {
        Some(e) => Rejection::InvalidDpopProof(e),
        None => replay_cache_full(dpop),
    })
}

#[cold]
fn unverifiable(no_verifier: bool) -> Rejection {
    if no_verifier {
        tracing::warn!(
            target: "tokengate",
            "a DPoP-bound token was presented with a proof, but the TokenGate checks no DPoP proofs; configure TokenGateBuilder::dpop to accept DPoP-bound tokens"
        );
    } else {
        tracing::error!(
            target: "tokengate",
            "a DPoP proof cannot be checked without the request's method and URI; call TokenGate::authorize_request (the guard and PolicyLayer do)"
        );
    }
    Rejection::InvalidDpopProof(DpopError::Unverifiable)
}

#[cold]
fn replay_cache_full(dpop: &DpopVerifier) -> Rejection {
    let (len, capacity) = dpop.replay_usage();
    tracing::warn!(
        target: "tokengate",
        len,
        capacity,
        "the DPoP replay cache is full: proofs are refused (503) until entries leave their window; raise DpopConfig::replay_capacity or shorten max_age"
    );
    Rejection::Unavailable {
        retry_after: Some(std::time::Duration::from_secs(1)),
    }
}
