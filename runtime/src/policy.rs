//! Policies: which token types a route accepts, and what the verified token must carry.
//!
//! A policy is built once — the attributes build it as a `static` — and evaluated per
//! request after verification. Requirements combine with AND; each one is all-of or any-of
//! over its values, and may be limited to some token types (the seed's POST route: API keys
//! need `write:users`, session tokens pass).
//!
//! ```
//! use std::borrow::Cow;
//! use tokengate_runtime::policy::{Match, Policy, Requirement, RequirementKind};
//! use tokengate_runtime::{TokenType, TokenTypes};
//!
//! const ACCEPTS: TokenTypes = TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::ApiKey]);
//! static SCOPES: [Cow<'static, str>; 1] = [Cow::Borrowed("write:users")];
//! static REQUIREMENTS: [Requirement; 1] = [Requirement::from_parts(
//!     RequirementKind::Scope,
//!     Match::All,
//!     &SCOPES,
//!     TokenTypes::EMPTY.with(TokenType::ApiKey),
//! )];
//! static POLICY: Policy = Policy::from_parts(ACCEPTS, &REQUIREMENTS);
//! assert!(POLICY.accepts().contains(TokenType::SessionToken));
//! ```

use std::borrow::Cow;
use std::fmt;

use tokengate_core::grammar::{self, ValueKind};
use tokengate_core::rate::{Per, Rate};
use tokengate_core::reverification::Reverification;

use crate::auth::AuthInfo;
use crate::binding::Binding;
use crate::rejection::{Forbidden, ForbiddenReason, Rejection, StepUp};
use crate::token::{TokenType, TokenTypes};

pub(crate) mod billing;
mod organization;
mod reverification;
mod step_up;

/// What a requirement looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementKind {
    /// OAuth-style scopes carried by machine tokens (`write:users`).
    Scope,
    /// The organization role of a session (`org:admin`).
    Role,
    /// An organization permission of a session (`org:invoices:create`).
    Permission,
    /// A custom async predicate, named by its path (`#[require(is_owner)]`). Evaluated by the
    /// handler's guard after every other check; a policy only records its name.
    Condition,
    /// A Clerk Billing feature of a session (`fea`): `exports`, `o:exports`, `u:exports`.
    Feature,
    /// A Clerk Billing plan of a session (`pla`): `pro`, `o:pro`, `u:pro`.
    Plan,
    /// A recent verification of a session's factors (`fva`): one value, a Clerk preset
    /// (`strict`) or `<level>:<minutes>` ([`Reverification`]'s text form).
    Reverification,
    /// The authentication context class of an OAuth access token (`acr`, RFC 9470).
    Acr,
    /// The maximum age in seconds of an OAuth access token's authentication (`auth_time`,
    /// RFC 9470 `max_age`): one value, a positive integer.
    MaxAge,
    /// A rate limit (`#[rate_limit]`): two values, the rate (`100/min`) and whom it counts
    /// for (`key` or `subject`). Enforced by the guard with the gate's
    /// [`RateLimits`](crate::rate_limit::RateLimits), after every other check.
    RateLimit,
}

impl RequirementKind {
    /// `scope`, `role`, `permission`, `condition`, `feature`, `plan`, `reverification`,
    /// `acr` or `max_age`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequirementKind::Scope => "scope",
            RequirementKind::Role => "role",
            RequirementKind::Permission => "permission",
            RequirementKind::Condition => "condition",
            RequirementKind::Feature => "feature",
            RequirementKind::Plan => "plan",
            RequirementKind::Reverification => "reverification",
            RequirementKind::Acr => "acr",
            RequirementKind::MaxAge => "max_age",
            RequirementKind::RateLimit => "rate_limit",
        }
    }

    /// The token types a requirement of this kind is about: sessions for organizations,
    /// billing and reverification, OAuth tokens for step-up; empty (every accepted type)
    /// for scopes and conditions.
    pub const fn natural_types(self) -> TokenTypes {
        match self {
            RequirementKind::Scope | RequirementKind::Condition | RequirementKind::RateLimit => TokenTypes::EMPTY,
            RequirementKind::Acr | RequirementKind::MaxAge => TokenTypes::EMPTY.with(TokenType::OAuthToken),
            _ => TokenTypes::EMPTY.with(TokenType::SessionToken),
        }
    }
}

/// How the values of a requirement combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Every value is needed.
    All,
    /// One value is enough.
    Any,
}

/// One requirement of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    kind: RequirementKind,
    matching: Match,
    values: Cow<'static, [Cow<'static, str>]>,
    applies_to: TokenTypes,
}

impl Requirement {
    /// A requirement from its parts, in `const` context (used by the attributes).
    /// An empty `applies_to` means every token type the policy accepts.
    pub const fn from_parts(
        kind: RequirementKind,
        matching: Match,
        values: &'static [Cow<'static, str>],
        applies_to: TokenTypes,
    ) -> Requirement {
        Requirement {
            kind,
            matching,
            values: Cow::Borrowed(values),
            applies_to,
        }
    }

    /// A requirement built at run time. Values are checked like the attributes check them.
    pub fn new<I, V>(kind: RequirementKind, matching: Match, values: I) -> Result<Requirement, PolicyError>
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        if kind == RequirementKind::Condition {
            return Err(PolicyError(
                "conditions are code, not data: declare them with #[require(predicate)] on a handler".to_owned(),
            ));
        }
        let values: Vec<Cow<'static, str>> = values.into_iter().map(|v| Cow::Owned(v.into())).collect();
        if values.is_empty() {
            return Err(PolicyError(format!(
                "a {} requirement needs at least one value",
                kind.as_str()
            )));
        }
        for v in &values {
            validate_value(kind, v).map_err(PolicyError)?;
        }
        if matches!(kind, RequirementKind::Reverification | RequirementKind::MaxAge) && values.len() > 1 {
            return Err(PolicyError(format!("a {} requirement has one value", kind.as_str())));
        }
        Ok(Requirement {
            kind,
            matching,
            values: Cow::Owned(values),
            applies_to: kind.natural_types(),
        })
    }

    /// A rate limit: `rate` per key or per subject, for every type the policy accepts (limit
    /// it with [`only_for`](Requirement::only_for)).
    pub fn rate_limit(rate: Rate, per: Per) -> Requirement {
        Requirement {
            kind: RequirementKind::RateLimit,
            matching: Match::All,
            values: Cow::Owned(vec![Cow::Owned(rate.to_string()), Cow::Borrowed(per.as_str())]),
            applies_to: TokenTypes::EMPTY,
        }
    }

    /// The rate and whom it counts for, for a [`RequirementKind::RateLimit`] requirement.
    pub fn as_rate_limit(&self) -> Option<(Rate, Per)> {
        if self.kind != RequirementKind::RateLimit {
            return None;
        }
        let rate = self.values.first()?.parse().ok()?;
        let per = self.values.get(1).map_or(Some(Per::Key), |p| Per::from_name(p))?;
        Some((rate, per))
    }

    /// The record of a named condition (a group layer's predicate), for the report.
    pub(crate) fn condition(name: &'static str) -> Requirement {
        Requirement {
            kind: RequirementKind::Condition,
            matching: Match::All,
            values: Cow::Owned(vec![Cow::Borrowed(name)]),
            applies_to: TokenTypes::EMPTY,
        }
    }

    /// Limits the requirement to some token types; others pass it.
    #[must_use]
    pub fn only_for(mut self, types: TokenTypes) -> Requirement {
        self.applies_to = types;
        self
    }

    /// What the requirement looks at.
    pub fn kind(&self) -> RequirementKind {
        self.kind
    }

    /// All-of or any-of.
    pub fn matching(&self) -> Match {
        self.matching
    }

    /// The required values.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &str> {
        self.values.iter().map(|v| &**v)
    }

    /// The token types it is limited to; empty means all the policy accepts.
    pub fn applies_to(&self) -> TokenTypes {
        self.applies_to
    }

    /// Whether the requirement applies to a token of `token_type`.
    pub fn applies(&self, token_type: TokenType) -> bool {
        self.applies_to.is_empty() || self.applies_to.contains(token_type)
    }

    fn check(&self, auth: &AuthInfo) -> Result<(), Rejection> {
        if !self.applies(auth.token_type)
            || matches!(self.kind, RequirementKind::Condition | RequirementKind::RateLimit)
        {
            // Conditions and rate limits are evaluated by the guard, which holds the
            // predicate and the counts.
            return Ok(());
        }
        let needs_org = matches!(self.kind, RequirementKind::Role | RequirementKind::Permission);
        if needs_org && !organization::active(auth) {
            return Err(self.forbidden(Vec::new(), ForbiddenReason::NoActiveOrganization));
        }
        let missing: Vec<Cow<'static, str>> = match self.matching {
            Match::All => self.values.iter().filter(|v| !self.holds(auth, v)).cloned().collect(),
            Match::Any if self.values.iter().any(|v| self.holds(auth, v)) => Vec::new(),
            Match::Any => self.values.to_vec(),
        };
        match missing.is_empty() {
            true => Ok(()),
            false if self.is_step_up() => Err(Rejection::InsufficientUserAuthentication(StepUp {
                stale: self.kind == RequirementKind::MaxAge,
                ..StepUp::default()
            })),
            false => Err(self.forbidden(missing, ForbiddenReason::lacking(self.kind))),
        }
    }

    /// Whether the token carries the required `value`, as Clerk decides it for sessions.
    fn holds(&self, auth: &AuthInfo, value: &str) -> bool {
        match self.kind {
            RequirementKind::Scope => auth.scopes.iter().any(|s| s == value),
            RequirementKind::Role => organization::has_role(auth, value),
            RequirementKind::Permission => organization::has_permission(auth, value),
            RequirementKind::Feature => billing::entitled(auth.claims.get("fea"), value),
            RequirementKind::Plan => billing::entitled(auth.claims.get("pla"), value),
            RequirementKind::Reverification => value
                .parse::<Reverification>()
                .is_ok_and(|r| reverification::fresh(auth.claims.get("fva"), r)),
            RequirementKind::Acr => step_up::has_acr(&auth.claims, value),
            RequirementKind::MaxAge => step_up::recent(&auth.claims, value),
            RequirementKind::Condition | RequirementKind::RateLimit => true,
        }
    }

    /// An RFC 9470 requirement (`acr`, `max_age`), refused with a `401` challenge.
    fn is_step_up(&self) -> bool {
        matches!(self.kind, RequirementKind::Acr | RequirementKind::MaxAge)
    }

    fn forbidden(&self, missing: Vec<Cow<'static, str>>, reason: ForbiddenReason) -> Rejection {
        Rejection::Forbidden(Forbidden {
            kind: self.kind,
            matching: self.matching,
            required: self.values.to_vec(),
            missing,
            reason,
        })
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joiner = match self.matching {
            Match::All => " and ",
            Match::Any => " or ",
        };
        write!(f, "{} ", self.kind.as_str())?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(joiner)?;
            }
            write!(f, "`{v}`")?;
        }
        if !self.applies_to.is_empty() {
            write!(f, " (for {})", self.applies_to)?;
        }
        Ok(())
    }
}

/// `accepts api_key, session_token; scope `write:users` (for api_key)`: what the report's
/// row says, on one line (the `tokengate.policy` field of the `tokengate.authorize` span).
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "accepts {}", self.accepts)?;
        if self.optional {
            f.write_str(" or no credential (optional)")?;
        }
        for requirement in self.requirements.iter() {
            write!(f, "; {requirement}")?;
        }
        if !self.binding.is_none() {
            write!(f, "; bound by {}", self.binding)?;
        }
        Ok(())
    }
}

/// A route's policy: the token types it accepts and the requirements the token must meet.
///
/// An *optional* policy ([`Policy::optional`], `#[accepts_token(optional, ...)]`) also admits
/// a request that carries no credential at all, anonymously (the handler's `Option<Auth>` is
/// `None`). A credential that is present is held to the policy exactly as on any other
/// route: a bad one is refused, never treated as anonymous.
///
/// It also holds the binding (DPoP, client certificate) it requires of tokens that can be
/// bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    accepts: TokenTypes,
    requirements: Cow<'static, [Requirement]>,
    optional: bool,
    binding: Binding,
}

impl Policy {
    /// A policy from its parts, in `const` context (used by the attributes).
    pub const fn from_parts(accepts: TokenTypes, requirements: &'static [Requirement]) -> Policy {
        Policy {
            accepts,
            requirements: Cow::Borrowed(requirements),
            optional: false,
            binding: Binding::NONE,
        }
    }

    /// The same policy, also admitting requests that carry no credential at all (anonymous
    /// callers). A request that carries one — an `Authorization` header of any scheme, or a
    /// `__session` cookie on a route that accepts sessions — is verified and checked as
    /// usual, and refused when it fails: never admitted as anonymous.
    #[must_use]
    pub const fn optional(mut self) -> Policy {
        self.optional = true;
        self
    }

    /// Whether anonymous callers are admitted ([`Policy::optional`]).
    pub const fn is_optional(&self) -> bool {
        self.optional
    }

    /// A policy from its parts that also requires `binding` of the accepted tokens that
    /// can be bound (OAuth and M2M tokens: [`crate::binding`]); `const`, for the attributes.
    pub const fn from_parts_bound(
        accepts: TokenTypes,
        requirements: &'static [Requirement],
        binding: Binding,
    ) -> Policy {
        Policy {
            accepts,
            requirements: Cow::Borrowed(requirements),
            optional: false,
            binding,
        }
    }

    /// The same policy, also requiring `binding` (run-time construction, e.g. for a group
    /// layer).
    #[must_use]
    pub fn bound(mut self, binding: Binding) -> Policy {
        self.binding = self.binding.with(binding);
        self
    }

    /// The binding required of accepted tokens that can be bound.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    /// A policy accepting `accepts`, with no requirement yet.
    pub const fn accepting(accepts: TokenTypes) -> Policy {
        Policy::from_parts(accepts, &[])
    }

    /// Adds a requirement (run-time construction, e.g. for a group layer).
    #[must_use]
    pub fn require(mut self, requirement: Requirement) -> Policy {
        self.requirements.to_mut().push(requirement);
        self
    }

    /// The accepted token types.
    pub fn accepts(&self) -> TokenTypes {
        self.accepts
    }

    /// The requirements, all of which must hold.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the policy has a rate limit (its guard then counts requests).
    pub fn has_rate_limits(&self) -> bool {
        self.requirements.iter().any(|r| r.kind == RequirementKind::RateLimit)
    }

    /// The rate limits that apply to a token of `token_type`.
    pub fn rate_limits(&self, token_type: TokenType) -> impl Iterator<Item = (Rate, Per)> + '_ {
        self.requirements
            .iter()
            .filter(move |r| r.applies(token_type))
            .filter_map(Requirement::as_rate_limit)
    }

    /// Checks a verified token against the requirements (the type was checked before).
    pub fn check(&self, auth: &AuthInfo) -> Result<(), Rejection> {
        if !self.accepts.contains(auth.token_type) {
            return Err(Rejection::TokenTypeNotAccepted {
                presented: auth.token_type,
                accepted: self.accepts,
            });
        }
        self.requirements
            .iter()
            .try_for_each(|r| r.check(auth))
            .map_err(|e| match e {
                Rejection::InsufficientUserAuthentication(failed) => {
                    Rejection::InsufficientUserAuthentication(StepUp {
                        stale: failed.stale,
                        ..self.step_up()
                    })
                }
                other => other,
            })
    }

    /// Everything the policy asks of an OAuth token's authentication, for an RFC 9470
    /// challenge: every acceptable `acr` and the smallest maximum age.
    fn step_up(&self) -> StepUp {
        let mut step_up = StepUp::default();
        for r in self.requirements.iter() {
            match r.kind {
                RequirementKind::Acr => step_up.acr_values.extend(r.values.iter().cloned()),
                RequirementKind::MaxAge => {
                    for age in r.values.iter().filter_map(|v| v.parse::<u32>().ok()) {
                        step_up.max_age = Some(step_up.max_age.map_or(age, |m| m.min(age)));
                    }
                }
                _ => {}
            }
        }
        step_up
    }
}

/// A policy built at run time was not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid tokengate policy: {0}")]
pub struct PolicyError(pub(crate) String);

/// Checks one requirement value; the error says what is wrong and how to fix it.
/// The attributes apply the same rules at compile time (`tokengate_core::grammar`).
pub fn validate_value(kind: RequirementKind, value: &str) -> Result<(), String> {
    let kind = match kind {
        RequirementKind::Scope => ValueKind::Scope,
        RequirementKind::Role => ValueKind::Role,
        RequirementKind::Permission => ValueKind::Permission,
        RequirementKind::Feature => ValueKind::Feature,
        RequirementKind::Plan => ValueKind::Plan,
        RequirementKind::Acr => ValueKind::Acr,
        RequirementKind::Condition => return Ok(()),
        RequirementKind::RateLimit => {
            return match (value.parse::<Rate>(), Per::from_name(value)) {
                (Ok(_), _) | (_, Some(_)) => Ok(()),
                (Err(e), None) => Err(e),
            };
        }
        RequirementKind::Reverification => {
            return value.parse::<Reverification>().map(|_| ()).map_err(|e| e.to_string());
        }
        RequirementKind::MaxAge => {
            return match value.parse::<u32>() {
                Ok(seconds) if seconds > 0 && !value.starts_with('+') => Ok(()),
                _ => Err(format!(
                    "max_age `{}` is not a number of seconds over zero",
                    value.escape_debug()
                )),
            };
        }
    };
    kind.validate(value).map_err(|e| e.to_string())
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    grammar::validate_scope(scope).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token_type: TokenType, scopes: &[&str]) -> AuthInfo {
        let mut a = AuthInfo::new(token_type);
        a.scopes = scopes.iter().map(|s| s.to_string()).collect();
        a
    }

    fn scopes(matching: Match, values: &[&str]) -> Requirement {
        Requirement::new(RequirementKind::Scope, matching, values.iter().copied()).unwrap()
    }

    #[test]
    fn all_of_names_every_missing_scope() {
        let p = Policy::accepting(TokenTypes::ANY).require(scopes(Match::All, &["a", "b", "c"]));
        assert!(p.check(&auth(TokenType::ApiKey, &["a", "b", "c"])).is_ok());
        match p.check(&auth(TokenType::ApiKey, &["b"])) {
            Err(Rejection::Forbidden(f)) => assert_eq!(f.missing, vec!["a", "c"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_of_needs_one() {
        let p = Policy::accepting(TokenTypes::ANY).require(scopes(Match::Any, &["read", "admin"]));
        assert!(p.check(&auth(TokenType::ApiKey, &["admin"])).is_ok());
        assert!(p.check(&auth(TokenType::ApiKey, &["write"])).is_err());
    }

    #[test]
    fn limited_requirement_lets_other_types_pass() {
        let p = Policy::accepting(TokenTypes::ANY)
            .require(scopes(Match::All, &["write:users"]).only_for(TokenTypes::EMPTY.with(TokenType::ApiKey)));
        assert!(p.check(&auth(TokenType::SessionToken, &[])).is_ok());
        assert!(p.check(&auth(TokenType::ApiKey, &[])).is_err());
        assert!(p.check(&auth(TokenType::ApiKey, &["write:users"])).is_ok());
    }

    #[test]
    fn type_not_accepted_is_rejected_even_after_verification() {
        let p = Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey));
        assert!(matches!(
            p.check(&auth(TokenType::M2mToken, &[])),
            Err(Rejection::TokenTypeNotAccepted { .. })
        ));
    }

    #[test]
    fn roles_and_permissions_need_an_organization() {
        let p = Policy::accepting(TokenTypes::DEFAULT)
            .require(Requirement::new(RequirementKind::Role, Match::Any, ["org:admin"]).unwrap());
        let mut a = auth(TokenType::SessionToken, &[]);
        match p.check(&a) {
            Err(Rejection::Forbidden(f)) => assert_eq!(f.reason, ForbiddenReason::NoActiveOrganization),
            other => panic!("{other:?}"),
        }
        a.org_id = Some("org_1".into());
        a.org_role = Some("org:member".into());
        assert!(p.check(&a).is_err());
        a.org_role = Some("org:admin".into());
        assert!(p.check(&a).is_ok());
    }

    #[test]
    fn session_and_step_up_kinds_apply_to_their_types() {
        let feature = Requirement::new(RequirementKind::Feature, Match::All, ["o:exports"]).unwrap();
        assert_eq!(feature.applies_to(), TokenTypes::DEFAULT);
        let acr = Requirement::new(RequirementKind::Acr, Match::Any, ["mfa"]).unwrap();
        assert_eq!(acr.applies_to(), TokenTypes::EMPTY.with(TokenType::OAuthToken));
        for (kind, bad) in [
            (RequirementKind::Feature, "x:exports"),
            (RequirementKind::Plan, ""),
            (RequirementKind::Acr, "m fa"),
            (RequirementKind::Reverification, "strcit"),
            (RequirementKind::Reverification, "second_factor:0"),
            (RequirementKind::MaxAge, "0"),
            (RequirementKind::MaxAge, "-5"),
            (RequirementKind::MaxAge, "ten"),
        ] {
            assert!(Requirement::new(kind, Match::All, [bad]).is_err(), "{kind:?} {bad:?}");
        }
        assert!(Requirement::new(RequirementKind::Reverification, Match::All, ["strict", "lax"]).is_err());
        // A session passes an OAuth requirement; an OAuth token passes a session one.
        let p = Policy::accepting(TokenTypes::ANY).require(feature).require(acr);
        let session = auth(TokenType::SessionToken, &[]);
        assert!(
            matches!(p.check(&session), Err(Rejection::Forbidden(f)) if f.reason == ForbiddenReason::MissingFeature)
        );
        let oauth = auth(TokenType::OAuthToken, &[]);
        assert!(matches!(
            p.check(&oauth),
            Err(Rejection::InsufficientUserAuthentication(_))
        ));
        assert!(p.check(&auth(TokenType::ApiKey, &[])).is_ok());
    }

    #[test]
    fn a_step_up_refusal_names_every_acr_and_the_smallest_age() {
        let p = Policy::accepting(TokenTypes::ANY)
            .require(Requirement::new(RequirementKind::MaxAge, Match::All, ["900"]).unwrap())
            .require(Requirement::new(RequirementKind::Acr, Match::Any, ["mfa", "phr"]).unwrap())
            .require(Requirement::new(RequirementKind::MaxAge, Match::All, ["600"]).unwrap());
        let mut oauth = auth(TokenType::OAuthToken, &[]);
        oauth.claims = serde_json::json!({"acr": "mfa"});
        match p.check(&oauth) {
            Err(Rejection::InsufficientUserAuthentication(s)) => {
                assert_eq!(
                    (s.acr_values, s.max_age, s.stale),
                    (vec!["mfa".into(), "phr".into()], Some(600), true)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn value_validation() {
        assert!(validate_scope("write:users").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "a\nb", "é"] {
            assert!(validate_scope(bad).is_err(), "{bad:?}");
        }
        assert!(validate_value(RequirementKind::Role, "org:admin").is_ok());
        assert!(validate_value(RequirementKind::Role, "admin").is_err());
        assert!(validate_value(RequirementKind::Permission, "org:invoices:create").is_ok());
        assert!(validate_value(RequirementKind::Permission, "org:invoices").is_err());
        assert!(validate_value(RequirementKind::Condition, "any name").is_ok());
        assert_eq!(
            validate_value(RequirementKind::Role, "admin"),
            Err("role `admin` is not of the form `org:<role>` (e.g. `org:admin`)".to_owned())
        );
        assert!(Requirement::new(RequirementKind::Scope, Match::All, Vec::<String>::new()).is_err());
    }
}
