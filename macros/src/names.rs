//! The names a declaration may use: token types, attributes, and the nearest-name suggestion.

use proc_macro2::{Ident, Span};

/// A token type, as named in attributes (mirrors `tokengate::TokenType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenType {
    SessionToken,
    OAuthToken,
    ApiKey,
    M2mToken,
}

impl TokenType {
    pub(crate) const ALL: [TokenType; 4] = [
        TokenType::SessionToken,
        TokenType::OAuthToken,
        TokenType::ApiKey,
        TokenType::M2mToken,
    ];

    /// The name written in attributes.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            TokenType::SessionToken => "session_token",
            TokenType::OAuthToken => "oauth_token",
            TokenType::ApiKey => "api_key",
            TokenType::M2mToken => "m2m_token",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<TokenType> {
        TokenType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The runtime enum's variant.
    pub(crate) fn variant(self) -> Ident {
        let name = match self {
            TokenType::SessionToken => "SessionToken",
            TokenType::OAuthToken => "OAuthToken",
            TokenType::ApiKey => "ApiKey",
            TokenType::M2mToken => "M2mToken",
        };
        Ident::new(name, Span::call_site())
    }

    const fn bit(self) -> u8 {
        match self {
            TokenType::SessionToken => 1,
            TokenType::OAuthToken => 2,
            TokenType::ApiKey => 4,
            TokenType::M2mToken => 8,
        }
    }
}

/// A set of token types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct TypeSet(u8);

impl TypeSet {
    pub(crate) const EMPTY: TypeSet = TypeSet(0);
    pub(crate) const ANY: TypeSet = TypeSet(0b1111);
    /// Clerk's default: session tokens only.
    pub(crate) const DEFAULT: TypeSet = TypeSet(1);

    pub(crate) fn with(self, t: TokenType) -> TypeSet {
        TypeSet(self.0 | t.bit())
    }

    pub(crate) fn without(self, t: TokenType) -> TypeSet {
        TypeSet(self.0 & !t.bit())
    }

    pub(crate) fn contains(self, t: TokenType) -> bool {
        self.0 & t.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL.into_iter().filter(move |t| self.contains(*t))
    }

    /// `api_key, m2m_token`.
    pub(crate) fn list(self) -> String {
        self.iter().map(TokenType::name).collect::<Vec<_>>().join(", ")
    }

    /// `api_key | m2m_token`, the form of a type limit.
    pub(crate) fn limit_form(self) -> String {
        self.iter().map(TokenType::name).collect::<Vec<_>>().join(" | ")
    }
}

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
}

impl AttrKind {
    pub(crate) const ALL: [AttrKind; 6] = [
        AttrKind::AcceptsToken,
        AttrKind::RequireScope,
        AttrKind::RequireRole,
        AttrKind::RequirePermission,
        AttrKind::Require,
        AttrKind::Public,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            AttrKind::AcceptsToken => "accepts_token",
            AttrKind::RequireScope => "require_scope",
            AttrKind::RequireRole => "require_role",
            AttrKind::RequirePermission => "require_permission",
            AttrKind::Require => "require",
            AttrKind::Public => "public",
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
            _ => "scope",
        }
    }

    /// An example value for messages.
    pub(crate) const fn example(self) -> &'static str {
        match self {
            AttrKind::RequireRole => "org:admin",
            AttrKind::RequirePermission => "org:invoices:create",
            AttrKind::Require => "is_owner",
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
        .map(TokenType::name)
        .or_else(|| nearest(name, TokenType::ALL.map(TokenType::name)))
        .or_else(|| (allow_any && nearest(name, ["any"]).is_some()).then_some("any"));
    let valid = valid_types(allow_any);
    match suggestion {
        Some(s) => format!("unknown token type `{name}`; did you mean `{s}`?\nvalid token types: {valid}"),
        None => format!("unknown token type `{name}`\nvalid token types: {valid}"),
    }
}

/// `session_token, oauth_token, api_key, m2m_token` (and `any`).
pub(crate) fn valid_types(allow_any: bool) -> String {
    let list = TokenType::ALL.map(TokenType::name).join(", ");
    if allow_any {
        format!("{list}, or `any` for all of them")
    } else {
        list
    }
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
    fn sets() {
        let s = TypeSet::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken);
        assert_eq!(s.list(), "api_key, m2m_token");
        assert_eq!(s.limit_form(), "api_key | m2m_token");
        assert!(
            TypeSet::ANY
                .without(TokenType::SessionToken)
                .iter()
                .all(|t| t != TokenType::SessionToken)
        );
        assert!(TypeSet::DEFAULT.contains(TokenType::SessionToken));
    }
}
