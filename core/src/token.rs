//! The four kinds of bearer token, and sets of them that can be built in `const` context.
//!
//! ```
//! use tokengate_core::{TokenType, TokenTypes};
//!
//! const MACHINES: TokenTypes = TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken);
//! assert!(MACHINES.contains(TokenType::ApiKey));
//! assert!(!MACHINES.contains(TokenType::SessionToken));
//! assert_eq!(MACHINES.to_string(), "api_key, m2m_token");
//! ```

use std::fmt;

/// A kind of bearer token, named as in Clerk's SDK (`acceptsToken`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenType {
    /// A session JWT issued to a signed-in user (`session_token`).
    SessionToken,
    /// An OAuth access token, JWT (RFC 9068) or opaque (`oauth_token`).
    OAuthToken,
    /// An API key, `ak_…` (`api_key`).
    ApiKey,
    /// A machine-to-machine token, `mt_…` or a JWT whose subject is `mch_…` (`m2m_token`).
    M2mToken,
}

impl TokenType {
    /// Every token type, in Clerk's order of precedence for the report.
    pub const ALL: [TokenType; 4] = [
        TokenType::SessionToken,
        TokenType::OAuthToken,
        TokenType::ApiKey,
        TokenType::M2mToken,
    ];

    /// The name used in attributes, reports and Clerk's SDK (`session_token`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::SessionToken => "session_token",
            TokenType::OAuthToken => "oauth_token",
            TokenType::ApiKey => "api_key",
            TokenType::M2mToken => "m2m_token",
        }
    }

    /// Parses a name as written in an attribute (`api_key`); `None` for anything else.
    pub fn from_name(name: &str) -> Option<TokenType> {
        TokenType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether tokens of this type can carry scopes (every type but session tokens).
    pub const fn carries_scopes(self) -> bool {
        !matches!(self, TokenType::SessionToken)
    }

    const fn bit(self) -> u8 {
        match self {
            TokenType::SessionToken => 1,
            TokenType::OAuthToken => 2,
            TokenType::ApiKey => 4,
            TokenType::M2mToken => 8,
        }
    }

    /// The type's position in [`TokenType::ALL`], for tables indexed by type.
    #[doc(hidden)]
    pub const fn index(self) -> usize {
        match self {
            TokenType::SessionToken => 0,
            TokenType::OAuthToken => 1,
            TokenType::ApiKey => 2,
            TokenType::M2mToken => 3,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of token types; `const`-constructible so policies can live in statics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TokenTypes(u8);

impl TokenTypes {
    /// No token type.
    pub const EMPTY: TokenTypes = TokenTypes(0);
    /// Every token type (`any` in an attribute).
    pub const ANY: TokenTypes = TokenTypes(0b1111);
    /// Clerk's default when a route names none: session tokens only.
    pub const DEFAULT: TokenTypes = TokenTypes::EMPTY.with(TokenType::SessionToken);

    /// This set plus `token_type`.
    #[must_use]
    pub const fn with(self, token_type: TokenType) -> TokenTypes {
        TokenTypes(self.0 | token_type.bit())
    }

    /// This set without `token_type`.
    #[must_use]
    pub const fn without(self, token_type: TokenType) -> TokenTypes {
        TokenTypes(self.0 & !token_type.bit())
    }

    /// A set of the given types.
    pub const fn from_slice(types: &[TokenType]) -> TokenTypes {
        let mut set = TokenTypes::EMPTY;
        let mut i = 0;
        while i < types.len() {
            set = set.with(types[i]);
            i += 1;
        }
        set
    }

    /// Whether the set holds `token_type`.
    pub const fn contains(self, token_type: TokenType) -> bool {
        self.0 & token_type.bit() != 0
    }

    /// Whether the set holds every type.
    pub const fn is_any(self) -> bool {
        self.0 == TokenTypes::ANY.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types both sets hold.
    #[must_use]
    pub const fn intersection(self, other: TokenTypes) -> TokenTypes {
        TokenTypes(self.0 & other.0)
    }

    /// The types in the set, in [`TokenType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl fmt::Debug for TokenTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for TokenTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

impl FromIterator<TokenType> for TokenTypes {
    fn from_iter<I: IntoIterator<Item = TokenType>>(iter: I) -> Self {
        iter.into_iter().fold(TokenTypes::EMPTY, TokenTypes::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in TokenType::ALL {
            assert_eq!(TokenType::from_name(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str(), "displayed as its name");
        }
        assert_eq!(TokenType::from_name("api_kye"), None);
        assert_eq!(TokenType::from_name("any"), None);
    }

    #[test]
    fn sets_are_const_and_exact() {
        const SET: TokenTypes = TokenTypes::from_slice(&[TokenType::ApiKey, TokenType::OAuthToken]);
        assert!(SET.contains(TokenType::ApiKey));
        assert!(SET.contains(TokenType::OAuthToken));
        assert!(!SET.contains(TokenType::SessionToken));
        assert!(!SET.contains(TokenType::M2mToken));
        assert!(TokenTypes::ANY.is_any());
        assert!(!SET.is_any());
        assert_eq!(SET.iter().count(), 2);
        assert_eq!(format!("{SET:?}"), "{OAuthToken, ApiKey}");
        assert_eq!(SET.to_string(), "oauth_token, api_key");
        assert_eq!(
            SET.with(TokenType::M2mToken).without(TokenType::OAuthToken).to_string(),
            "api_key, m2m_token"
        );
        assert_eq!(TokenTypes::ANY.without(TokenType::SessionToken).iter().count(), 3);
        assert_eq!(
            SET.intersection(TokenTypes::DEFAULT),
            TokenTypes::EMPTY,
            "the default set is session tokens only"
        );
    }
}
