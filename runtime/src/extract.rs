//! Extraction: finding the bearer token in a request, and rejecting malformed ones early.
//!
//! The `Authorization: Bearer <token>` header wins (or `Authorization: DPoP <token>`, a
//! DPoP-bound token whose proof the gate checks: [`crate::binding`]); the `__session` cookie is
//! read only when the route accepts session tokens. A header over [`MAX_HEADER_BYTES`], a token outside
//! RFC 6750's `b64token` alphabet, two `Authorization` headers or a scheme without a
//! credential are rejected here, before any other step looks at the token.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
//! use tokengate_runtime::extract::{extract, TokenSource};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer ak_abc"));
//! let found = extract(&headers, true).unwrap().unwrap();
//! assert_eq!(found.token(), "ak_abc");
//! assert_eq!(found.source(), TokenSource::Header);
//! ```

use std::fmt;

use http::{HeaderMap, header};

use crate::rejection::{InvalidRequest, Rejection};

/// The largest `Authorization` header (or `__session` cookie value) looked at, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// The cookie Clerk keeps session tokens in.
pub const SESSION_COOKIE: &str = "__session";

/// Where a token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// `Authorization: Bearer …`.
    Header,
    /// The `__session` cookie.
    Cookie,
}

/// The `Authorization` scheme a token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// `Bearer` (RFC 6750), or the `__session` cookie.
    Bearer,
    /// `DPoP` (RFC 9449): the request must carry a `DPoP` proof for the token.
    Dpop,
}

/// A token found in a request. Its `Debug` output never shows the token.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    token: &'a str,
    source: TokenSource,
    scheme: Scheme,
}

impl<'a> Presented<'a> {
    /// The token itself. Never log it.
    pub fn token(&self) -> &'a str {
        self.token
    }

    /// Where it was found.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The scheme it came with: `Bearer` (and the cookie) or `DPoP`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("token", &format_args!("<redacted, {} bytes>", self.token.len()))
            .field("source", &self.source)
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// Finds the bearer token of a request.
///
/// `Ok(None)` means no credentials at all (a `401` without an error code). `DPoP <token>` is
/// found like `Bearer <token>`, with [`Scheme::Dpop`]. A request that sends another
/// `Authorization` scheme has no bearer credentials; the cookie is then still consulted when
/// `session_cookie` is true.
pub fn extract(headers: &HeaderMap, session_cookie: bool) -> Result<Option<Presented<'_>>, Rejection> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        return Err(Rejection::InvalidRequest(InvalidRequest::MultipleAuthorizationHeaders));
    }
    if let Some(value) = first
        && let Some((token, scheme)) = bearer(value.as_bytes())?
    {
        return Ok(Some(Presented {
            token,
            source: TokenSource::Header,
            scheme,
        }));
    }
    if session_cookie {
        return session_from_cookies(headers);
    }
    Ok(None)
}

/// Parses one `Authorization` value: `Ok(None)` for a scheme other than `Bearer` and `DPoP`.
///
/// `Bearer ` in any case, then the token; anything else takes [`other_scheme`]. Works on
/// bytes: a bearer token that passes the `b64token` check is ASCII, so the whole value is
/// ASCII without a separate scan.
fn bearer(value: &[u8]) -> Result<Option<(&str, Scheme)>, Rejection> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(Rejection::InvalidRequest(InvalidRequest::HeaderTooLarge));
    }
    match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => {
            bearer_token(token).map(|t| Some((t, Scheme::Bearer)))
        }
        _ => other_scheme(value),
    }
}

/// The token after `Bearer `.
fn bearer_token(token: &[u8]) -> Result<&str, Rejection> {
    const MALFORMED: Rejection = Rejection::InvalidRequest(InvalidRequest::MalformedAuthorization);
    if token.is_empty() {
        return Err(Rejection::InvalidRequest(InvalidRequest::MissingBearerToken));
    }
    if !is_b64token_bytes(token) {
        return Err(MALFORMED);
    }
    std::str::from_utf8(token).map_err(|_| MALFORMED)
}

/// A value that does not start with `Bearer ` (any case): another scheme, `Bearer` alone, or
/// a malformed value. Values of other schemes are still checked for non-ASCII bytes (they are
/// malformed whatever their scheme).
#[inline(never)]
fn other_scheme(value: &[u8]) -> Result<Option<(&str, Scheme)>, Rejection> {
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], Some(&value[space + 1..])),
        None => (value, None),
    };
    // RFC 9449 §7.1: `DPoP <token68>`, the token in the same alphabet as a bearer token's.
    let named = if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        Scheme::Bearer
    };
    if named == Scheme::Bearer && !scheme.eq_ignore_ascii_case(b"bearer") {
        if !value.is_ascii() {
            return Err(Rejection::InvalidRequest(InvalidRequest::MalformedAuthorization));
        }
        // Another scheme (Basic, Digest, …) carries no bearer credentials: RFC 6750 §3.1.
        return Ok(None);
    }
    match rest {
        None | Some([]) => Err(Rejection::InvalidRequest(InvalidRequest::MissingBearerToken)),
        Some(token) => bearer_token(token).map(|t| Some((t, named))),
    }
}

/// The `__session` cookie's token. Out of line: a bearer header is the common case.
#[inline(never)]
fn session_from_cookies(headers: &HeaderMap) -> Result<Option<Presented<'_>>, Rejection> {
    for value in headers.get_all(header::COOKIE) {
        let bytes = value.as_bytes();
        for pair in bytes.split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(rest) = pair.strip_prefix(SESSION_COOKIE.as_bytes()) else {
                continue;
            };
            let Some(raw) = rest.strip_prefix(b"=") else {
                continue;
            };
            if raw.len() > MAX_HEADER_BYTES {
                return Err(Rejection::InvalidRequest(InvalidRequest::HeaderTooLarge));
            }
            let raw = raw
                .strip_prefix(b"\"")
                .and_then(|r| r.strip_suffix(b"\""))
                .unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            return match std::str::from_utf8(raw) {
                Ok(token) if is_b64token(token) => Ok(Some(Presented {
                    token,
                    source: TokenSource::Cookie,
                    scheme: Scheme::Bearer,
                })),
                _ => Err(Rejection::InvalidRequest(InvalidRequest::MalformedCookie)),
            };
        }
    }
    Ok(None)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(token: &str) -> bool {
    is_b64token_bytes(token.as_bytes())
}

fn is_b64token_bytes(bytes: &[u8]) -> bool {
    let body_len = bytes.len() - bytes.iter().rev().take_while(|b| **b == b'=').count();
    body_len > 0 && all_bytes(&bytes[..body_len], is_b64token_byte)
}

/// Whether every byte passes `ok`, a branch-free test.
///
/// Sixteen bytes at a time, each block a branch-free fold the compiler turns into vector
/// compares; the tail is one more block that overlaps the last, rather than a byte-by-byte
/// loop (for an API key of 46 bytes the scalar tail was most of the work). A session token
/// is hundreds of bytes long on every request; a short-circuiting `all` was once a third of
/// a rejection's cost.
#[inline(always)]
pub(crate) fn all_bytes(bytes: &[u8], ok: impl Fn(u8) -> bool + Copy) -> bool {
    let block = |chunk: &[u8; 16]| chunk.iter().fold(true, |all, &b| all & ok(b));
    if bytes.len() < 16 {
        return bytes.iter().fold(true, |all, &b| all & ok(b));
    }
    let (blocks, _) = bytes.as_chunks::<16>();
    let last = bytes.last_chunk::<16>().is_some_and(block);
    last & blocks.iter().fold(true, |all, chunk| all & block(chunk))
}

/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, without branches.
#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/')
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_auth(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        headers
    }

    #[test]
    fn every_position_of_every_length_is_checked() {
        for len in 1..80 {
            let good = "a".repeat(len);
            assert!(is_b64token(&good), "{len}");
            for at in 0..len {
                let mut bad = good.clone().into_bytes();
                bad[at] = b'"';
                assert!(!is_b64token_bytes(&bad), "length {len}, bad byte at {at}");
            }
        }
    }

    /// Every byte value at every position of tokens of many lengths, against the byte-by-byte
    /// definition: the vector loop's blocks, its overlapping last block and its short path.
    #[test]
    fn every_byte_at_every_position_agrees_with_the_alphabet() {
        let lengths = (1..=40).chain([47, 48, 49, 64, 100, 127, 128, 129, 300]);
        for len in lengths {
            let base: Vec<u8> = (0..len).map(|i| b"aZ09-._~+/"[i % 10]).collect();
            assert!(is_b64token_bytes(&base), "length {len}");
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut token = base.clone();
                    token[at] = b;
                    let padding_at_end = b == b'=' && at == len - 1 && len > 1;
                    let expected = is_b64token_byte(b) || padding_at_end;
                    assert_eq!(
                        is_b64token_bytes(&token),
                        expected,
                        "length {len}, byte {b:#04x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn b64token_alphabet_byte_by_byte() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), expected, "byte {b:#04x}");
            if b != b'=' && b.is_ascii() {
                let token = format!("abc{}def==", char::from(b));
                assert_eq!(is_b64token(&token), expected, "{token:?}");
            }
        }
        assert!(!is_b64token("===") && !is_b64token("") && !is_b64token("a=b"));
        assert!(is_b64token("a.b_c-d~e+f/g=="));
    }

    fn reason(headers: &HeaderMap) -> InvalidRequest {
        match extract(headers, true) {
            Err(Rejection::InvalidRequest(r)) => r,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn scheme_word_agrees_with_the_general_parser() {
        // Every byte value at every position of the scheme and its space: the one-word match
        // takes a value only when the general parser reads it as `Bearer <token>` too.
        for at in 0..7 {
            for b in 0..=255u8 {
                let mut value = b"Bearer ak_1".to_vec();
                value[at] = b;
                assert_eq!(
                    format!("{:?}", bearer(&value)),
                    format!("{:?}", other_scheme(&value)),
                    "{value:?}"
                );
            }
        }
    }

    #[test]
    fn other_repeated_headers_are_not_a_second_authorization() {
        let mut h = with_auth(&[b"Bearer ak_1"]);
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        assert_eq!(extract(&h, false).unwrap().unwrap().token(), "ak_1");
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer ak_2"));
        assert_eq!(reason(&h), InvalidRequest::MultipleAuthorizationHeaders);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let h = with_auth(&[format!("{scheme} ak_1").as_bytes()]);
            assert_eq!(extract(&h, false).unwrap().unwrap().token(), "ak_1");
        }
    }

    #[test]
    fn malformed_headers_are_invalid_requests() {
        assert_eq!(reason(&with_auth(&[b"Bearer"])), InvalidRequest::MissingBearerToken);
        assert_eq!(reason(&with_auth(&[b"Bearer "])), InvalidRequest::MissingBearerToken);
        assert_eq!(
            reason(&with_auth(&[b"Bearer  ak_1"])),
            InvalidRequest::MalformedAuthorization
        );
        assert_eq!(
            reason(&with_auth(&[b"Bearer a b"])),
            InvalidRequest::MalformedAuthorization
        );
        assert_eq!(
            reason(&with_auth(&[b"Bearer ak_\"1"])),
            InvalidRequest::MalformedAuthorization
        );
        assert_eq!(
            reason(&with_auth(&[b"Bearer \xc3\xa9t\xc3\xa9"])),
            InvalidRequest::MalformedAuthorization
        );
        assert_eq!(
            reason(&with_auth(&[b"Bearer =abc"])),
            InvalidRequest::MalformedAuthorization
        );
        assert_eq!(
            reason(&with_auth(&[b"Bearer a", b"Bearer b"])),
            InvalidRequest::MultipleAuthorizationHeaders
        );
        let big = format!("Bearer {}", "a".repeat(9 * 1024));
        assert_eq!(reason(&with_auth(&[big.as_bytes()])), InvalidRequest::HeaderTooLarge);
    }

    #[test]
    fn padding_and_b64_alphabet_accepted() {
        let h = with_auth(&[b"Bearer ab+/c-._~d=="]);
        assert_eq!(extract(&h, false).unwrap().unwrap().token(), "ab+/c-._~d==");
    }

    #[test]
    fn other_schemes_carry_no_bearer_credentials() {
        let h = with_auth(&[b"Basic dXNlcjpwYXNz"]);
        assert!(extract(&h, false).unwrap().is_none());
    }

    #[test]
    fn dpop_scheme_is_found_with_its_scheme() {
        for value in [&b"DPoP eyJ.a.b"[..], b"dpop eyJ.a.b", b"DPOP eyJ.a.b"] {
            let h = with_auth(&[value]);
            let p = extract(&h, false).unwrap().unwrap();
            assert_eq!((p.token(), p.scheme()), ("eyJ.a.b", Scheme::Dpop));
        }
        let h = with_auth(&[b"Bearer eyJ.a.b"]);
        let p = extract(&h, false).unwrap().unwrap();
        assert_eq!(p.scheme(), Scheme::Bearer);
        assert_eq!(reason(&with_auth(&[b"DPoP "])), InvalidRequest::MissingBearerToken);
        assert_eq!(
            reason(&with_auth(&[b"DPoP a b"])),
            InvalidRequest::MalformedAuthorization
        );
    }

    #[test]
    fn header_wins_over_cookie_and_cookie_only_when_asked() {
        let mut h = with_auth(&[b"Bearer from_header"]);
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; __session=from_cookie"));
        let p = extract(&h, true).unwrap().unwrap();
        assert_eq!((p.token(), p.source()), ("from_header", TokenSource::Header));

        h.remove(header::AUTHORIZATION);
        let p = extract(&h, true).unwrap().unwrap();
        assert_eq!((p.token(), p.source()), ("from_cookie", TokenSource::Cookie));
        assert!(extract(&h, false).unwrap().is_none());
    }

    #[test]
    fn cookie_name_must_match_exactly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("__session_other=x; __sessionx=y"),
        );
        assert!(extract(&h, true).unwrap().is_none());
        h.insert(header::COOKIE, HeaderValue::from_static("__session=bad value"));
        assert_eq!(reason(&h), InvalidRequest::MalformedCookie);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let h = with_auth(&[b"Bearer ak_supersecret"]);
        let p = extract(&h, false).unwrap().unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("supersecret"), "{dbg}");
    }
}
