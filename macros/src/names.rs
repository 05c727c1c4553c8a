//! The names a declaration may use: token types (defined in `tokengate-core`) with their other
//! spellings, attributes, and the nearest-name suggestion.

use tokengate_core::{TokenType, TokenTypes};

/// The tokengate attributes; matched on the last segment of an attribute's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    AcceptsToken,
    RequireScope,
    RequireRole,
    RequirePermission,
    /// `#[require(predicate, ...)]`: custom conditions.
    Require,
    Public,
    RequireFeature,
    RequirePlan,
    RequireReverification,
    RequireAcr,
    /// `#[rate_limit("100/min")]`.
    RateLimit,
    /// `#[require_dpop]`: DPoP-bound tokens (RFC 9449).
    RequireDpop,
    /// `#[require_mtls]`: certificate-bound tokens (RFC 8705).
    RequireMtls,
}

impl AttrKind {
    pub(crate) const ALL: [AttrKind; 13] = [
        AttrKind::AcceptsToken,
        AttrKind::RequireScope,
        AttrKind::RequireRole,
        AttrKind::RequirePermission,
        AttrKind::Require,
        AttrKind::Public,
        AttrKind::RequireFeature,
        AttrKind::RequirePlan,
        AttrKind::RequireReverification,
        AttrKind::RequireAcr,
        AttrKind::RateLimit,
        AttrKind::RequireDpop,
        AttrKind::RequireMtls,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            AttrKind::AcceptsToken => "accepts_token",
            AttrKind::RequireScope => "require_scope",
            AttrKind::RequireRole => "require_role",
            AttrKind::RequirePermission => "require_permission",
            AttrKind::Require => "require",
            AttrKind::Public => "public",
            AttrKind::RequireFeature => "require_feature",
            AttrKind::RequirePlan => "require_plan",
            AttrKind::RequireReverification => "require_reverification",
            AttrKind::RequireAcr => "require_acr",
            AttrKind::RateLimit => "rate_limit",
            AttrKind::RequireDpop => "require_dpop",
            AttrKind::RequireMtls => "require_mtls",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<AttrKind> {
        AttrKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// `scope`, `role` or `permission` for requirement attributes.
    pub(crate) const fn value_noun(self) -> &'static str {
        match self {
            AttrKind::RequireRole => "role",
            AttrKind::RequirePermission => "permission",
            AttrKind::Require => "condition",
            AttrKind::RequireFeature => "feature",
            AttrKind::RequirePlan => "plan",
            AttrKind::RequireReverification => "reverification",
            AttrKind::RequireAcr => "acr",
            AttrKind::RateLimit => "rate",
            _ => "scope",
        }
    }

    /// An example value for messages.
    pub(crate) const fn example(self) -> &'static str {
        match self {
            AttrKind::RequireRole => "org:admin",
            AttrKind::RequirePermission => "org:invoices:create",
            AttrKind::Require => "is_owner",
            AttrKind::RequireFeature => "exports",
            AttrKind::RequirePlan => "o:pro",
            AttrKind::RequireReverification => "strict",
            AttrKind::RequireAcr => "mfa",
            AttrKind::RateLimit => "100/min",
            _ => "write:users",
        }
    }
}

/// The candidate closest to `name`, if one is close enough to be a likely typo.
pub(crate) fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(&name, c)))
        .filter(|(_, score)| *score >= 0.75)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// Common other spellings of the token types (Clerk's JS SDK, plurals, synonyms).
fn alias(name: &str) -> Option<TokenType> {
    match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "session" | "sessions" | "session_tokens" | "sessiontoken" | "jwt" | "user" => Some(TokenType::SessionToken),
        "oauth" | "oauth_tokens" | "oauthtoken" | "oauth_access_token" | "access_token" => Some(TokenType::OAuthToken),
        "apikey" | "api_keys" | "key" => Some(TokenType::ApiKey),
        "m2m" | "m2m_tokens" | "m2mtoken" | "machine" | "machine_token" => Some(TokenType::M2mToken),
        _ => None,
    }
}

/// The message for a name that is not a token type.
pub(crate) fn unknown_type_message(name: &str, allow_any: bool) -> String {
    let suggestion = alias(name)
        .map(TokenType::as_str)
        .or_else(|| nearest(name, TokenType::ALL.map(TokenType::as_str)))
        .or_else(|| (allow_any && nearest(name, ["any"]).is_some()).then_some("any"));
    let valid = valid_types(allow_any);
    match suggestion {
        Some(s) => format!("unknown token type `{name}`; did you mean `{s}`?\nvalid token types: {valid}"),
        None => format!("unknown token type `{name}`\nvalid token types: {valid}"),
    }
}

/// `session_token, oauth_token, api_key, m2m_token` (and `any`).
pub(crate) fn valid_types(allow_any: bool) -> String {
    let list = TokenType::ALL.map(TokenType::as_str).join(", ");
    if allow_any {
        format!("{list}, or `any` for all of them")
    } else {
        list
    }
}

/// `api_key | m2m_token`, the form of a type limit.
pub(crate) fn limit_form(types: TokenTypes) -> String {
    types.iter().map(TokenType::as_str).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert!(unknown_type_message("api_kye", true).contains("did you mean `api_key`?"));
        assert!(unknown_type_message("session", true).contains("did you mean `session_token`?"));
        assert!(unknown_type_message("machine_token", true).contains("did you mean `m2m_token`?"));
        assert!(unknown_type_message("anny", true).contains("did you mean `any`?"));
        assert!(!unknown_type_message("anny", false).contains("`any`"));
        assert!(!unknown_type_message("zzzzzz", true).contains("did you mean"));
    }

    #[test]
    fn limits() {
        let s = TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken);
        assert_eq!(limit_form(s), "api_key | m2m_token");
        assert_eq!(limit_form(TokenTypes::DEFAULT), "session_token");
    }
}
