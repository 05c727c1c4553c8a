//! Configuration of the JWT verifier: the rules for each kind of token and the errors a
//! configuration can have.
//!
//! ```
//! use tokengate_runtime::jwt::{Algorithm, OAuthRules, SessionRules};
//!
//! let session = SessionRules::new()
//!     .authorized_parties(["https://app.example.com"])
//!     .algorithms(&[Algorithm::RS256]);
//! let oauth = OAuthRules::new("https://auth.example.com", ["https://api.example.com"]);
//! assert!(format!("{session:?}").contains("app.example.com"));
//! # let _ = oauth;
//! ```

use jsonwebtoken::Algorithm;

use super::claims::ClaimRules;
use super::keys::{AlgorithmSet, KeyError};

/// A configuration the JWT verifier refused. Each message says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A URL is not usable.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// No key source was configured.
    #[error(
        "the JWT verifier has no keys; give it a PEM/JWK/JWKS (JwtVerifierBuilder::keys) or a JWKS URL (JwtVerifierBuilder::jwks)"
    )]
    NoKeys,
    /// No kind of token was enabled.
    #[error(
        "the JWT verifier accepts no kind of token; enable sessions (.session), OAuth access tokens (.oauth) or M2M tokens (.m2m)"
    )]
    NoTokenKind,
    /// A rule set allows no algorithm.
    #[error(
        "{0} tokens allow no algorithm; allow at least one asymmetric algorithm (RS256…); HS256/HS384/HS512 are never supported"
    )]
    NoAlgorithm(&'static str),
    /// OAuth tokens need an issuer and an audience.
    #[error(
        "OAuth access tokens need the issuer and at least one audience (your resource identifier), as RFC 9068 requires"
    )]
    OAuthIncomplete,
    /// M2M JWT rules name no issuer and do not say to skip the check.
    #[error(
        "M2M JWTs need an issuer check: name the `iss` your M2M JWTs carry with M2mRules::new().issuer(\"https://…\"), or call M2mRules::skip_issuer_check() to accept M2M JWTs from any issuer your keys sign for"
    )]
    M2mIssuerRequired,
    /// A value is empty or blank.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The leeway is over the maximum.
    #[error("a leeway of {0} s is too large; clocks more than 5 minutes apart are broken, fix them instead")]
    LeewayTooLarge(u64),
    /// Discovery failed.
    #[error("OAuth/OIDC discovery failed: {0}")]
    Discovery(String),
    /// Another invalid setting.
    #[error("{0}")]
    Invalid(String),
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

fn check_list(list: &[String], what: &'static str) -> Result<(), JwtConfigError> {
    if list.iter().any(|s| s.trim().is_empty()) {
        return Err(JwtConfigError::Empty(what));
    }
    Ok(())
}

/// Rules for session tokens (Clerk semantics): RS256/RS384/RS512 by default, `typ` absent
/// or `JWT`, Clerk's `cat` header absent, the session category or "ignore", `sid` required,
/// `azp` checked when authorized parties are set, `iss`/`aud` when configured, a `pending`
/// session refused unless accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRules {
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) accept_pending: bool,
    pub(crate) require_sid: bool,
    pub(crate) check_category: bool,
    pub(crate) authorized_parties: Vec<String>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            algorithms: AlgorithmSet::RSA_PKCS1,
            accept_pending: false,
            require_sid: true,
            check_category: true,
            authorized_parties: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
        }
    }
}

impl SessionRules {
    /// Clerk's defaults.
    pub fn new() -> SessionRules {
        SessionRules::default()
    }

    /// The origins allowed in `azp` (Clerk's `authorizedParties`). When set, `azp` is required.
    #[must_use]
    pub fn authorized_parties<I, S>(mut self, parties: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorized_parties = strings(parties);
        self
    }

    /// Requires `iss` to be `issuer` (Clerk: your Frontend API URL, e.g.
    /// `https://clerk.example.com`), compared exactly. Called again, it adds another allowed
    /// issuer.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Requires `iss` to be one of `issuers` (replacing any set before).
    #[must_use]
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issuers = strings(issuers);
        self
    }

    /// Requires `aud` to contain one of `audiences`.
    #[must_use]
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = strings(audiences);
        self
    }

    /// Replaces the allowed algorithms (symmetric ones are ignored).
    #[must_use]
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = AlgorithmSet::of(algorithms);
        self
    }

    /// Accepts session tokens without a `sid` claim (default: refused, `missing-session-id`).
    /// Every Clerk session carries one; an ID token or an access token from an authorization
    /// server that shares the key set does not, and would otherwise pass as a session. Clerk's
    /// SDK does not require it: use this only for an issuer whose sessions have no `sid`.
    #[must_use]
    pub fn allow_missing_sid(mut self) -> Self {
        self.require_sid = false;
        self
    }

    /// Whether Clerk's `cat` header is checked (default: yes; a JWT template, an M2M token or
    /// an unknown category is refused as `token-category-mismatch`, see
    /// [`category`](super::category)). Turn it off only for an issuer whose `cat` header
    /// means something else; Clerk's session and M2M categories still count in
    /// classification (`token-type-ambiguous`).
    #[must_use]
    pub fn check_token_category(mut self, check: bool) -> Self {
        self.check_category = check;
        self
    }

    /// Accepts sessions whose status (`sts`) is `pending` (default: refused as
    /// `token-inactive`, as Clerk's SDK treats them as signed out). The status is in
    /// `Auth::session_status` either way.
    #[must_use]
    pub fn accept_pending_sessions(mut self, accept: bool) -> Self {
        self.accept_pending = accept;
        self
    }

    pub(crate) fn check(&self) -> Result<(), JwtConfigError> {
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithm("session"));
        }
        check_list(&self.authorized_parties, "an authorized party")?;
        check_list(&self.issuers, "a session issuer")?;
        check_list(&self.audiences, "a session audience")
    }

    pub(crate) fn claim_rules(&self) -> ClaimRules {
        ClaimRules {
            issuers: self.issuers.clone(),
            audiences: self.audiences.clone(),
            authorized_parties: self.authorized_parties.clone(),
            accept_pending: self.accept_pending,
            require_sid: self.require_sid,
            machine: None,
        }
    }
}

/// Rules for OAuth JWT access tokens (RFC 9068): `typ` `at+jwt`, `iss` exact, `aud`
/// containing the resource, `exp`, `sub`, `client_id`, `iat`, `jti` required.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthRules {
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
}

impl OAuthRules {
    /// Tokens from `issuer`, for one of `audiences` (this resource server's identifiers).
    /// Every asymmetric algorithm is allowed by default.
    pub fn new<I, S>(issuer: impl Into<String>, audiences: I) -> OAuthRules
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        OAuthRules {
            algorithms: AlgorithmSet::ASYMMETRIC,
            issuer: issuer.into(),
            audiences: strings(audiences),
        }
    }

    /// Replaces the allowed algorithms (symmetric ones are ignored).
    #[must_use]
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = AlgorithmSet::of(algorithms);
        self
    }

    pub(crate) fn check(&self) -> Result<(), JwtConfigError> {
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithm("OAuth"));
        }
        if self.issuer.trim().is_empty() || self.audiences.is_empty() {
            return Err(JwtConfigError::OAuthIncomplete);
        }
        check_list(&self.audiences, "an OAuth audience")
    }

    pub(crate) fn claim_rules(&self) -> ClaimRules {
        ClaimRules {
            issuers: vec![self.issuer.clone()],
            audiences: self.audiences.clone(),
            authorized_parties: Vec::new(),
            accept_pending: false,
            require_sid: false,
            machine: None,
        }
    }
}

/// Rules for Clerk's M2M JWTs: an `mch_` subject, an issuer (named, or its check skipped
/// explicitly), Clerk's `cat` header absent or the M2M category, scopes from `scopes` (or,
/// without it, from `aud`, as Clerk's SDK reads them). RS256/RS384/RS512 by default; `aud`
/// checked when configured.
///
/// ```
/// use tokengate_runtime::jwt::M2mRules;
///
/// // This service is the machine `mch_billing`: it takes M2M JWTs from its instance that
/// // list it.
/// let rules = M2mRules::new().issuer("https://clerk.example.com").require_machine("mch_billing");
/// # let _ = rules;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct M2mRules {
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) issuers: Vec<String>,
    pub(crate) skip_issuer: bool,
    pub(crate) check_category: bool,
    pub(crate) machine: Option<String>,
    pub(crate) audiences: Vec<String>,
}

impl Default for M2mRules {
    fn default() -> Self {
        M2mRules {
            algorithms: AlgorithmSet::RSA_PKCS1,
            issuers: Vec::new(),
            skip_issuer: false,
            check_category: true,
            machine: None,
            audiences: Vec::new(),
        }
    }
}

impl M2mRules {
    /// Clerk's defaults. An issuer is still to be named ([`M2mRules::issuer`]) or its check
    /// skipped ([`M2mRules::skip_issuer_check`]): the verifier refuses to build otherwise.
    pub fn new() -> M2mRules {
        M2mRules::default()
    }

    /// Requires `iss` to be `issuer`, compared exactly. Called again, it adds another.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts M2M JWTs whatever their `iss`. Every JWT your keys sign with an `mch_` subject
    /// (and no other class's `cat`) is then a machine's token: do this only when the keys sign
    /// for nobody else (a Clerk instance's keys, with Clerk's `cat` header checked).
    #[must_use]
    pub fn skip_issuer_check(mut self) -> Self {
        self.skip_issuer = true;
        self
    }

    /// Requires `machine_id` (this service's own machine, `mch_…`) among the token's scopes:
    /// Clerk lists in them the machines a token may call. A token that does not list it is
    /// refused as `wrong-audience`. Called again, it replaces the machine.
    #[must_use]
    pub fn require_machine(mut self, machine_id: impl Into<String>) -> Self {
        self.machine = Some(machine_id.into());
        self
    }

    /// Whether Clerk's `cat` header is checked (default: yes; anything but the M2M category,
    /// "ignore" included, is refused as `token-category-mismatch`, as Clerk's `verifyM2MJwt`
    /// does). Turn it off only for an issuer whose `cat` header means something else.
    #[must_use]
    pub fn check_token_category(mut self, check: bool) -> Self {
        self.check_category = check;
        self
    }

    /// Requires `iss` to be one of `issuers` (replacing any set before).
    #[must_use]
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issuers = strings(issuers);
        self
    }

    /// Requires `aud` to contain one of `audiences`.
    #[must_use]
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = strings(audiences);
        self
    }

    /// Replaces the allowed algorithms (symmetric ones are ignored).
    #[must_use]
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = AlgorithmSet::of(algorithms);
        self
    }

    pub(crate) fn check(&self) -> Result<(), JwtConfigError> {
        if self.algorithms.is_empty() {
            return Err(JwtConfigError::NoAlgorithm("M2M"));
        }
        match (self.issuers.is_empty(), self.skip_issuer) {
            (true, false) => return Err(JwtConfigError::M2mIssuerRequired),
            (false, true) => {
                return Err(JwtConfigError::Invalid(
                    "M2mRules names issuers and also skip_issuer_check(); keep one of them".into(),
                ));
            }
            _ => {}
        }
        check_list(&self.issuers, "an M2M issuer")?;
        if self
            .machine
            .as_deref()
            .is_some_and(|m| !m.starts_with(crate::classify::MACHINE_SUBJECT_PREFIX) || m.trim() != m)
        {
            return Err(JwtConfigError::Invalid(
                "M2mRules::require_machine takes a Clerk machine id, `mch_…` (the machine this service runs as)".into(),
            ));
        }
        check_list(&self.audiences, "an M2M audience")
    }

    pub(crate) fn claim_rules(&self) -> ClaimRules {
        ClaimRules {
            issuers: self.issuers.clone(),
            audiences: self.audiences.clone(),
            authorized_parties: Vec::new(),
            accept_pending: false,
            require_sid: false,
            machine: self.machine.clone(),
        }
    }
}
