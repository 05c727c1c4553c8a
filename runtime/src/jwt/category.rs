//! Clerk's token categories: the JOSE header `cat` that tells apart the classes of JWT one
//! instance key signs (`@clerk/backend` ≥ 3.16.9, `packages/backend/src/tokens/jwtCategories.ts`).
//!
//! | `cat` | class | a session may carry it | an M2M JWT may carry it |
//! |---|---|---|---|
//! | absent | minted before the rollout | yes | yes |
//! | [`SESSION_TOKEN`] `cl_B7d4PD111AAA` | session (and handshake) token | yes | no |
//! | [`JWT_TEMPLATE`] `cl_B7d4PD222AAA` | JWT template | no | no |
//! | [`M2M_TOKEN`] `cl_B7d4PD333AAA` | M2M token | no | yes |
//! | [`IGNORE`] `cl_I7d4PD111III` | "ignore": instances that stamp it on every class | yes | no |
//! | anything else | unknown | no | no |
//!
//! That is Clerk's rule: `authenticateRequest` refuses as a session any `cat` that is neither
//! the session category nor "ignore" (`hasNonSessionJwtCategory`), `verifyM2MJwt` refuses any
//! `cat` but the M2M category (the "ignore" one too). Clerk's OAuth JWT verification does not
//! read `cat`, and neither do [`OAuthRules`](super::OAuthRules). A category that names one
//! class on a token whose `typ` or `sub` says another (the session category on an `at+jwt`,
//! the M2M category without an `mch_` subject…) makes the token ambiguous: classification
//! refuses it (`token-type-ambiguous`) before any verifier runs.
//!
//! ```
//! use tokengate_runtime::TokenType;
//! use tokengate_runtime::jwt::category::{self, Category};
//!
//! let template = Category::of(Some(category::JWT_TEMPLATE));
//! assert!(!template.suits(TokenType::SessionToken));
//! assert!(Category::of(None).suits(TokenType::SessionToken), "tokens minted before the rollout");
//! assert_eq!(Category::of(Some(category::M2M_TOKEN)).class(), Some(TokenType::M2mToken));
//! ```

use crate::token::TokenType;

/// `cat` of Clerk session tokens (and handshake tokens).
pub const SESSION_TOKEN: &str = "cl_B7d4PD111AAA";
/// `cat` of Clerk JWT templates.
pub const JWT_TEMPLATE: &str = "cl_B7d4PD222AAA";
/// `cat` of Clerk M2M JWTs.
pub const M2M_TOKEN: &str = "cl_B7d4PD333AAA";
/// `cat` of instances that stamp one category on every class: it says nothing.
pub const IGNORE: &str = "cl_I7d4PD111III";

/// What a JWT's `cat` header says about its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Category {
    /// No `cat` header.
    Absent,
    /// [`SESSION_TOKEN`].
    SessionToken,
    /// [`JWT_TEMPLATE`].
    JwtTemplate,
    /// [`M2M_TOKEN`].
    M2mToken,
    /// [`IGNORE`].
    Ignore,
    /// Any other value (compared exactly, as Clerk does).
    Unknown,
}

impl Category {
    /// The category of a `cat` header value (`None`: no header).
    pub fn of(cat: Option<&str>) -> Category {
        match cat {
            None => Category::Absent,
            Some(SESSION_TOKEN) => Category::SessionToken,
            Some(JWT_TEMPLATE) => Category::JwtTemplate,
            Some(M2M_TOKEN) => Category::M2mToken,
            Some(IGNORE) => Category::Ignore,
            Some(_) => Category::Unknown,
        }
    }

    /// The token type the category names, if it names one of tokengate's: what
    /// classification compares with the type the token's `typ` and `sub` give.
    pub fn class(self) -> Option<TokenType> {
        match self {
            Category::SessionToken => Some(TokenType::SessionToken),
            Category::M2mToken => Some(TokenType::M2mToken),
            _ => None,
        }
    }

    /// Whether a token of `token_type` may carry this category, by Clerk's rules (the
    /// table above). OAuth access tokens may carry any: Clerk does not read `cat` on them.
    pub fn suits(self, token_type: TokenType) -> bool {
        match token_type {
            TokenType::SessionToken => {
                matches!(self, Category::Absent | Category::SessionToken | Category::Ignore)
            }
            TokenType::M2mToken => matches!(self, Category::Absent | Category::M2mToken),
            TokenType::OAuthToken => true,
            TokenType::ApiKey => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clerks_table() {
        use Category::*;
        use TokenType::{M2mToken as M, OAuthToken as O, SessionToken as S};
        let rows = [
            (None, Absent, [true, true, true]),
            (Some(SESSION_TOKEN), SessionToken, [true, false, true]),
            (Some(JWT_TEMPLATE), JwtTemplate, [false, false, true]),
            (Some(M2M_TOKEN), M2mToken, [false, true, true]),
            (Some(IGNORE), Ignore, [true, false, true]),
            (Some("cl_some_future_cat"), Unknown, [false, false, true]),
            // Exact comparison: case and white space matter.
            (Some("CL_B7D4PD111AAA"), Unknown, [false, false, true]),
            (Some(" cl_B7d4PD111AAA"), Unknown, [false, false, true]),
            (Some(""), Unknown, [false, false, true]),
        ];
        for (cat, category, [session, m2m, oauth]) in rows {
            assert_eq!(Category::of(cat), category, "{cat:?}");
            assert_eq!(category.suits(S), session, "{cat:?} as a session");
            assert_eq!(category.suits(M), m2m, "{cat:?} as an M2M JWT");
            assert_eq!(category.suits(O), oauth, "{cat:?} as an OAuth token");
        }
    }
}
