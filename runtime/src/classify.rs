//! Classification: which kind of token a string is, in Clerk's order, without verifying it.
//!
//! 1. `mt_…`, or a JWT whose `sub` starts with `mch_` → [`TokenType::M2mToken`];
//! 2. `oat_…`, or a JWT whose header `typ` is `at+jwt` / `application/at+jwt` →
//!    [`TokenType::OAuthToken`];
//! 3. `ak_…` → [`TokenType::ApiKey`];
//! 4. any other JWT → [`TokenType::SessionToken`].
//!
//! A JWT has one type, never two readings: one whose signals disagree is refused
//! (`token-type-ambiguous`) before any verifier sees it. That is an `at+jwt` with an `mch_`
//! subject (Clerk reads it as M2M; tokengate's M2M rules would otherwise check an OAuth
//! token for another resource as a machine's), and a Clerk `cat` header naming a class
//! other than the one `typ` and `sub` give (see [`crate::jwt::category`]).
//!
//! Anything else cannot be a session token (those are always JWTs): it is an opaque OAuth
//! token when an introspection verifier is configured, and malformed otherwise.
//!
//! ```
//! use tokengate_runtime::classify::{Classifier, TokenFormat};
//! use tokengate_runtime::TokenType;
//!
//! let classifier = Classifier::default();
//! let c = classifier.classify("ak_0123456789abcdef").unwrap();
//! assert_eq!((c.token_type(), c.format()), (TokenType::ApiKey, TokenFormat::Opaque));
//! assert!(classifier.classify("not-a-token").is_err());
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::jwt::category::Category;
use crate::rejection::{InvalidReason, Rejection};
use crate::token::TokenType;

/// How a token is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    /// A compact JWS (`header.payload.signature`).
    Jwt,
    /// An opaque string (API keys, `mt_`/`oat_` tokens, introspected OAuth tokens).
    Opaque,
}

/// The result of classifying a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    token_type: TokenType,
    format: TokenFormat,
}

impl Classified {
    /// The token's type.
    pub fn token_type(self) -> TokenType {
        self.token_type
    }

    /// The token's format.
    pub fn format(self) -> TokenFormat {
        self.format
    }
}

/// The prefixes that mark opaque tokens. Clerk's are the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefixes {
    /// API keys (default `ak_`).
    pub api_key: Cow<'static, str>,
    /// Opaque M2M tokens (default `mt_`).
    pub m2m_token: Cow<'static, str>,
    /// Opaque OAuth access tokens (default `oat_`).
    pub oauth_token: Cow<'static, str>,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            api_key: Cow::Borrowed("ak_"),
            m2m_token: Cow::Borrowed("mt_"),
            oauth_token: Cow::Borrowed("oat_"),
        }
    }
}

/// Decides a token's type from its shape alone.
#[derive(Clone, Debug)]
pub struct Classifier {
    prefixes: Prefixes,
    opaque_oauth: bool,
}

/// The subject prefix of Clerk machines: a JWT whose `sub` starts with it is an M2M token.
pub const MACHINE_SUBJECT_PREFIX: &str = "mch_";

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(Prefixes::default())
    }
}

impl Classifier {
    /// A classifier with the given prefixes.
    pub fn new(prefixes: Prefixes) -> Self {
        Classifier {
            prefixes,
            opaque_oauth: false,
        }
    }

    /// Whether unprefixed opaque tokens are OAuth access tokens (set when an introspection
    /// verifier is configured).
    #[must_use]
    pub fn with_opaque_oauth(mut self, enabled: bool) -> Self {
        self.opaque_oauth = enabled;
        self
    }

    /// The configured prefixes.
    pub fn prefixes(&self) -> &Prefixes {
        &self.prefixes
    }

    /// Whether `token` would be classified as a JWT if it decodes: no opaque prefix, three
    /// dot-separated segments, and a header that starts like a JSON object (`eyJ`, the base64
    /// of `{"`). Cheap; a `false` for a JWT with an unusual header only costs a classification.
    pub fn may_be_jwt(&self, token: &str) -> bool {
        token.starts_with("eyJ")
            && self.opaque_type(token).is_none()
            && token.bytes().fold(0usize, |dots, b| dots + usize::from(b == b'.')) == 2
    }

    /// Classifies `token`. Fails with `invalid_token` (`malformed-token`) for a JWT-shaped
    /// string whose header or payload does not decode, or an unprefixed opaque string when
    /// opaque OAuth tokens are not enabled.
    pub fn classify(&self, token: &str) -> Result<Classified, Rejection> {
        let opaque = |token_type| {
            Ok(Classified {
                token_type,
                format: TokenFormat::Opaque,
            })
        };
        if let Some(token_type) = self.opaque_type(token) {
            return opaque(token_type);
        }
        let mut parts = token.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(header), Some(payload), Some(_signature), None) => {
                let token_type = classify_jwt(header, payload)?;
                Ok(Classified {
                    token_type,
                    format: TokenFormat::Jwt,
                })
            }
            _ if self.opaque_oauth && !token.contains('.') => opaque(TokenType::OAuthToken),
            _ => Err(Rejection::InvalidToken(InvalidReason::Malformed)),
        }
    }
}

impl Classifier {
    /// The type of an opaque prefix `token` starts with: M2M, then OAuth, then API key.
    fn opaque_type(&self, token: &str) -> Option<TokenType> {
        let p = &self.prefixes;
        [
            (&p.m2m_token, TokenType::M2mToken),
            (&p.oauth_token, TokenType::OAuthToken),
            (&p.api_key, TokenType::ApiKey),
        ]
        .into_iter()
        .find(|(prefix, _)| token.starts_with(prefix.as_ref()))
        .map(|(_, token_type)| token_type)
    }
}

#[derive(serde::Deserialize)]
struct PeekHeader<'a> {
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cat: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct PeekClaims {
    #[serde(default)]
    sub: Option<serde_json::Value>,
}

/// Decodes just enough of a JWT to classify it: the header's `typ` and `cat`, the payload's
/// `sub`. Kept out of line: its base64 and JSON code would otherwise sit in the middle of the
/// opaque tokens' few instructions.
#[inline(never)]
fn classify_jwt(header: &str, payload: &str) -> Result<TokenType, Rejection> {
    let malformed = || Rejection::InvalidToken(InvalidReason::Malformed);
    // serde accepts a JSON array for a struct; a JOSE header and a claims set are objects.
    let is_object = |json: &[u8]| json.trim_ascii_start().first() == Some(&b'{');
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
    if !is_object(&header) || !is_object(&payload) {
        return Err(malformed());
    }
    let header: PeekHeader<'_> = serde_json::from_slice(&header).map_err(|_| malformed())?;
    let claims: PeekClaims = serde_json::from_slice(&payload).map_err(|_| malformed())?;
    jwt_type(header.typ.as_deref(), header.cat.as_deref(), claims.sub.as_ref()).map_err(Rejection::InvalidToken)
}

/// The type of a JWT with this header `typ` and `cat` and payload `sub`: Clerk's rule,
/// `sub: mch_…` → M2M, `typ: at+jwt` → OAuth, else a session token; refused as
/// [`InvalidReason::TypeAmbiguous`] when both of the first two hold, or when `cat` names a
/// class ([`Category::class`]) other than the one they give. The JWT verifier applies the
/// same function to the token it verified, so it never accepts (nor remembers) a token as a
/// type this classifier would not give it.
pub(crate) fn jwt_type(
    typ: Option<&str>,
    cat: Option<&str>,
    sub: Option<&serde_json::Value>,
) -> Result<TokenType, InvalidReason> {
    let machine = matches!(sub, Some(serde_json::Value::String(s)) if s.starts_with(MACHINE_SUBJECT_PREFIX));
    let access = typ.is_some_and(is_access_token_typ);
    let by_claims = match (machine, access) {
        (true, true) => return Err(InvalidReason::TypeAmbiguous),
        (true, false) => TokenType::M2mToken,
        (false, true) => TokenType::OAuthToken,
        (false, false) => TokenType::SessionToken,
    };
    match Category::of(cat).class() {
        Some(named) if named != by_claims => Err(InvalidReason::TypeAmbiguous),
        _ => Ok(by_claims),
    }
}

/// Whether a JWT `typ` marks an RFC 9068 access token (`at+jwt`, `application/at+jwt`).
pub fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn class(token: &str) -> Result<TokenType, Rejection> {
        Classifier::default().classify(token).map(Classified::token_type)
    }

    #[test]
    fn prefixes_in_clerks_order() {
        assert_eq!(class("mt_abc").unwrap(), TokenType::M2mToken);
        assert_eq!(class("oat_abc").unwrap(), TokenType::OAuthToken);
        assert_eq!(class("ak_abc").unwrap(), TokenType::ApiKey);
    }

    #[test]
    fn jwts_by_subject_then_typ() {
        let session = jwt(r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"sub":"user_1"}"#);
        assert_eq!(class(&session).unwrap(), TokenType::SessionToken);
        let oauth = jwt(r#"{"alg":"RS256","typ":"at+jwt"}"#, r#"{"sub":"user_1"}"#);
        assert_eq!(class(&oauth).unwrap(), TokenType::OAuthToken);
        let oauth = jwt(r#"{"alg":"RS256","typ":"application/at+jwt"}"#, r#"{}"#);
        assert_eq!(class(&oauth).unwrap(), TokenType::OAuthToken);
        let m2m = jwt(r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"sub":"mch_1"}"#);
        assert_eq!(class(&m2m).unwrap(), TokenType::M2mToken);
        let numeric_sub = jwt(r#"{"alg":"RS256"}"#, r#"{"sub":5}"#);
        assert_eq!(class(&numeric_sub).unwrap(), TokenType::SessionToken);
    }

    #[test]
    fn a_jwt_whose_signals_disagree_is_ambiguous() {
        use crate::jwt::category::{IGNORE, JWT_TEMPLATE, M2M_TOKEN, SESSION_TOKEN};
        let ambiguous = Err(Rejection::InvalidToken(InvalidReason::TypeAmbiguous));
        let of = |typ: &str, cat: Option<&str>, sub: &str| {
            let mut header = serde_json::json!({"alg":"RS256","typ":typ});
            if let Some(cat) = cat {
                header["cat"] = cat.into();
            }
            class(&jwt(&header.to_string(), &serde_json::json!({"sub":sub}).to_string()))
        };
        // Clerk reads an `at+jwt` with a machine subject as M2M; here it has no one reading.
        assert_eq!(of("at+jwt", None, "mch_1"), ambiguous);
        assert_eq!(of("application/at+jwt", None, "mch_1"), ambiguous);
        // A category naming one class, claims giving another.
        assert_eq!(of("JWT", Some(M2M_TOKEN), "user_1"), ambiguous);
        assert_eq!(of("at+jwt", Some(M2M_TOKEN), "user_1"), ambiguous);
        assert_eq!(of("JWT", Some(SESSION_TOKEN), "mch_1"), ambiguous);
        assert_eq!(of("at+jwt", Some(SESSION_TOKEN), "user_1"), ambiguous);
        // Agreeing signals, or a category that names none of these types: one reading.
        assert_eq!(of("JWT", Some(SESSION_TOKEN), "user_1"), Ok(TokenType::SessionToken));
        assert_eq!(of("JWT", Some(M2M_TOKEN), "mch_1"), Ok(TokenType::M2mToken));
        for cat in [None, Some(IGNORE), Some(JWT_TEMPLATE), Some("cl_unknown")] {
            assert_eq!(of("JWT", cat, "user_1"), Ok(TokenType::SessionToken), "{cat:?}");
            assert_eq!(of("JWT", cat, "mch_1"), Ok(TokenType::M2mToken), "{cat:?}");
            assert_eq!(of("at+jwt", cat, "user_1"), Ok(TokenType::OAuthToken), "{cat:?}");
        }
        // A `cat` that is not a string is no header of Clerk's: malformed.
        let numeric = jwt(r#"{"alg":"RS256","cat":5}"#, r#"{"sub":"user_1"}"#);
        assert_eq!(class(&numeric), Err(Rejection::InvalidToken(InvalidReason::Malformed)));
    }

    #[test]
    fn malformed_jwts_and_opaque_strings() {
        let bad = Rejection::InvalidToken(InvalidReason::Malformed);
        assert_eq!(class("abc.def.ghi").unwrap_err(), bad);
        assert_eq!(class(&jwt("not json", "{}")).unwrap_err(), bad);
        assert_eq!(class(&jwt("{}", "[1]")).unwrap_err(), bad);
        assert_eq!(class(&jwt("{}", r#"{"sub":"a","sub":"mch_b"}"#)).unwrap_err(), bad);
        assert_eq!(class("a.b.c.d").unwrap_err(), bad);
        assert_eq!(class("opaque-token").unwrap_err(), bad);
        let introspecting = Classifier::default().with_opaque_oauth(true);
        assert_eq!(
            introspecting.classify("opaque-token").unwrap().token_type(),
            TokenType::OAuthToken
        );
        assert_eq!(introspecting.classify("a.b.c.d").unwrap_err(), bad);
    }

    #[test]
    fn prefixes_are_configurable() {
        let c = Classifier::new(Prefixes {
            api_key: "key_".into(),
            ..Prefixes::default()
        });
        assert_eq!(c.classify("key_1").unwrap().token_type(), TokenType::ApiKey);
        assert!(c.classify("ak_1").is_err());
    }

    #[test]
    fn may_be_jwt_holds_for_every_jwt_the_classifier_reads_as_one() {
        let c = Classifier::default();
        for token in [
            jwt(r#"{"alg":"RS256"}"#, r#"{"sub":"user_1"}"#),
            jwt(r#"{"alg":"RS256","typ":"at+jwt"}"#, r#"{"sub":"user_1"}"#),
            jwt(r#"{"alg":"RS256"}"#, r#"{"sub":"mch_1"}"#),
        ] {
            assert_eq!(c.classify(&token).unwrap().format(), TokenFormat::Jwt);
            assert!(c.may_be_jwt(&token), "{token}");
        }
        let session = jwt(r#"{"alg":"RS256"}"#, r#"{"sub":"user_1"}"#);
        for not_jwt in [
            "ak_x.y.z",
            "mt_eyJ.a.b",
            "eyJ.a",
            "eyJ.a.b.c",
            "eyJab",
            "abc.def.ghi",
            "",
        ] {
            assert!(!c.may_be_jwt(not_jwt), "{not_jwt}");
        }
        // An opaque prefix wins, even one that looks like a JWT header.
        let odd = Classifier::new(Prefixes {
            api_key: "eyJ".into(),
            ..Prefixes::default()
        });
        assert!(!odd.may_be_jwt(&session));
        assert_eq!(odd.classify(&session).unwrap().token_type(), TokenType::ApiKey);
    }

    #[test]
    fn opaque_prefixes_match_like_starts_with() {
        // Prefixes of every length around a word's eight bytes, tokens shorter and longer.
        let prefixes = ["a", "ak_", "oat_", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghijkl"];
        let tokens = [
            "",
            "a",
            "ak",
            "ak_",
            "ak_x",
            "oat_1",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghij",
            "abcdefghijklmn",
            "abcdefgX",
            "Xbcdefgh",
            "ak_123456789",
            "oat_12345678",
        ];
        for api_key in prefixes {
            for m2m in ["mt_", "abcdefgh", "zz"] {
                for oauth in ["oat_", "abcdefghijk"] {
                    let classifier = Classifier::new(Prefixes {
                        api_key: api_key.into(),
                        m2m_token: m2m.into(),
                        oauth_token: oauth.into(),
                    });
                    for token in tokens {
                        let expected = [
                            (m2m, TokenType::M2mToken),
                            (oauth, TokenType::OAuthToken),
                            (api_key, TokenType::ApiKey),
                        ]
                        .into_iter()
                        .find(|(prefix, _)| token.starts_with(prefix))
                        .map(|(_, token_type)| token_type);
                        assert_eq!(
                            classifier.opaque_type(token),
                            expected,
                            "{token:?} with api_key={api_key:?} m2m={m2m:?} oauth={oauth:?}"
                        );
                    }
                }
            }
        }
    }
}
