//! Secrets of API keys (`ak_…`) and opaque M2M tokens (`mt_…`): generation, checksum, hashing.
//!
//! A secret is its kind's prefix, 33 base62 characters drawn from the operating system's
//! CSPRNG (196 bits), and a 6-character base62 CRC32 of everything before it — as GitHub's
//! tokens do — so a mistyped or randomly forged secret is rejected before any store lookup.
//! Only the SHA-256 of a secret ([`SecretHash`]) is ever stored.
//!
//! ```
//! use tokengate_runtime::keys::{KeyKind, Secret, check_secret};
//! use tokengate_runtime::rejection::InvalidReason;
//!
//! let secret = Secret::generate(KeyKind::ApiKey).unwrap();
//! assert!(secret.expose().starts_with("ak_"));
//! assert_eq!(check_secret(secret.expose()), Ok(KeyKind::ApiKey));
//! // One character changed: the checksum no longer matches.
//! let mut typo = secret.expose().to_string();
//! let c = if typo.as_bytes()[5] == b'a' { "b" } else { "a" };
//! typo.replace_range(5..6, c);
//! assert_eq!(check_secret(&typo), Err(InvalidReason::BadChecksum));
//! ```

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::extract::all_bytes;
use crate::rejection::InvalidReason;
use crate::token::TokenType;

/// Base62 characters of randomness in a secret (33 × log2(62) ≈ 196 bits).
pub const RANDOM_LEN: usize = 33;
/// Base62 characters of checksum at the end of a secret (a CRC32).
pub const CHECKSUM_LEN: usize = 6;
/// The length of a secret after its 3-character prefix.
pub const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a secret is: an API key or an opaque M2M token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// An API key, `ak_…` ([`TokenType::ApiKey`]).
    ApiKey,
    /// An opaque machine-to-machine token, `mt_…` ([`TokenType::M2mToken`]).
    M2mToken,
}

impl KeyKind {
    /// The prefix of its secrets and ids (`ak_`, `mt_`), as Clerk's.
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyKind::ApiKey => "ak_",
            KeyKind::M2mToken => "mt_",
        }
    }

    /// The stored name: `api_key` or `m2m_token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyKind::ApiKey => "api_key",
            KeyKind::M2mToken => "m2m_token",
        }
    }

    /// Parses a stored name (`api_key`, `m2m_token`).
    pub fn from_name(name: &str) -> Option<KeyKind> {
        match name {
            "api_key" => Some(KeyKind::ApiKey),
            "m2m_token" => Some(KeyKind::M2mToken),
            _ => None,
        }
    }

    /// The token type its secrets classify as.
    pub const fn token_type(self) -> TokenType {
        match self {
            KeyKind::ApiKey => TokenType::ApiKey,
            KeyKind::M2mToken => TokenType::M2mToken,
        }
    }

    /// The kind verifying `token_type`, if it is one of the two.
    pub const fn from_token_type(token_type: TokenType) -> Option<KeyKind> {
        match token_type {
            TokenType::ApiKey => Some(KeyKind::ApiKey),
            TokenType::M2mToken => Some(KeyKind::M2mToken),
            _ => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that holds a secret: its bytes are overwritten with zeros when it is dropped, so
/// the plaintext does not stay in freed memory, and two of them compare in constant time.
#[derive(Clone)]
pub(crate) struct WipedString(pub(crate) Zeroizing<String>);

impl WipedString {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// `parts` joined into a string that is wiped when dropped, allocated once at its final size
/// (a string that grew would leave the secret's first bytes in the memory it moved out of).
#[cfg_attr(
    not(any(feature = "clerk", feature = "introspection")),
    expect(
        dead_code,
        reason = "only the Clerk and introspection clients send secrets in headers"
    )
)]
pub(crate) fn wiped_concat(parts: &[&str]) -> Zeroizing<String> {
    let mut out = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    Zeroizing::new(out)
}

impl PartialEq for WipedString {
    fn eq(&self, other: &WipedString) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for WipedString {}

// `Zeroizing` wipes the bytes on drop.
impl ZeroizeOnDrop for WipedString {}

/// A plaintext secret, shown once at creation. `Debug` redacts it; never log [`expose`](Self::expose).
///
/// Its bytes are overwritten with zeros when it is dropped, so the plaintext does not stay in
/// freed memory; two secrets compare in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(WipedString);

impl ZeroizeOnDrop for Secret {}

impl Secret {
    /// Draws a new secret of `kind` from the operating system's CSPRNG.
    pub fn generate(kind: KeyKind) -> Result<Secret, getrandom::Error> {
        let mut out = String::with_capacity(kind.prefix().len() + BODY_LEN);
        out.push_str(kind.prefix());
        push_random_base62(&mut out, RANDOM_LEN)?;
        let checksum = encode_checksum(crc32(out.as_bytes()));
        out.extend(checksum.iter().map(|&b| char::from(b)));
        Ok(Secret(WipedString(Zeroizing::new(out))))
    }

    /// The secret itself. Show it to its owner once; never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The hash stored in place of the secret.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_str())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 of a secret: what a store keeps and looks keys up by.
///
/// The key verifier computes it once per request: it keys the caches of verified and refused
/// keys and the store lookups in flight, and names a key in a revocation. Its `==` may stop
/// at the first differing byte (it compares digests, which say nothing of the secrets);
/// [`SecretHash::ct_eq`] is the constant-time comparison for a record the store returned.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes `secret`.
    pub fn of(secret: &str) -> SecretHash {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps 32 stored bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<SecretHash> {
        <[u8; 32]>::try_from(bytes).ok().map(SecretHash)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 bytes as 64 lowercase hex digits (what PostgreSQL's notices carry, and GitHub's
    /// secret scanning asks for as `token_hash`).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Compares two hashes in constant time.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// Checks a presented secret's shape and checksum without any lookup: `Malformed` for a wrong
/// prefix, length or alphabet, `BadChecksum` when the checksum does not match.
pub fn check_secret(token: &str) -> Result<KeyKind, InvalidReason> {
    let kind = if token.starts_with(KeyKind::ApiKey.prefix()) {
        KeyKind::ApiKey
    } else if token.starts_with(KeyKind::M2mToken.prefix()) {
        KeyKind::M2mToken
    } else {
        return Err(InvalidReason::Malformed);
    };
    let bytes = token.as_bytes();
    let prefix_len = kind.prefix().len();
    // Branch-free and vectorized: every byte is looked at anyway when the secret is well
    // formed, which is the common case.
    if bytes.len() != prefix_len + BODY_LEN || !all_bytes(&bytes[prefix_len..], is_base62) {
        return Err(InvalidReason::Malformed);
    }
    let (payload, checksum) = bytes.split_at(prefix_len + RANDOM_LEN);
    // A plain comparison: the checksum is computed from the presented token alone, so how long
    // the comparison takes tells the sender nothing they do not already have.
    if encode_checksum(crc32(payload)) == checksum {
        Ok(kind)
    } else {
        Err(InvalidReason::BadChecksum)
    }
}

/// `[0-9A-Za-z]`, without branches.
#[inline(always)]
fn is_base62(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit
}

/// A new record id: the kind's prefix and 32 lowercase hex digits (128 random bits), as
/// Clerk's ids (`ak_3beecc9c60adb5f9b850e91a8ee1e992`).
pub fn generate_id(kind: KeyKind) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    let mut id = String::with_capacity(3 + 32);
    id.push_str(kind.prefix());
    for b in bytes {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ok(id)
}

/// Whether `value` has the shape of the ids [`generate_id`] makes: `ak_` or `mt_` and 32 hex
/// digits.
///
/// ```
/// use tokengate_runtime::keys::is_key_id;
///
/// assert!(is_key_id("ak_3beecc9c60adb5f9b850e91a8ee1e992"));
/// assert!(is_key_id("mt_3beecc9c60adb5f9b850e91a8ee1e992"));
/// assert!(!is_key_id("ak_3beecc9c60adb5f9b850e91a8ee1e99"));
/// assert!(!is_key_id("xx_3beecc9c60adb5f9b850e91a8ee1e992"));
/// assert!(!is_key_id("ak_3beecc9c60adb5f9b850e91a8ee1e99é"));
/// ```
pub fn is_key_id(value: &str) -> bool {
    value.len() == 35
        && (value.starts_with("ak_") || value.starts_with("mt_"))
        && value.bytes().skip(3).all(|b| b.is_ascii_hexdigit())
}

/// Whether `value`, given where a key's id belongs, has the shape of a secret (or of most of
/// one) rather than of an id: a message then does not repeat it, since it was probably pasted
/// in the wrong place and belongs to nobody's logs.
///
/// ```
/// use tokengate_runtime::keys::{KeyKind, Secret, looks_like_secret, quote_id};
///
/// let secret = Secret::generate(KeyKind::ApiKey).unwrap();
/// assert!(looks_like_secret(secret.expose()));
/// assert!(!looks_like_secret("ak_3beecc9c60adb5f9b850e91a8ee1e992"));
/// assert_eq!(quote_id("ak_3beecc9c60adb5f9b850e91a8ee1e992"), "`ak_3beecc9c60adb5f9b850e91a8ee1e992`");
/// assert!(!quote_id(secret.expose()).contains(secret.expose()));
/// assert!(looks_like_secret(&format!("Bearer {}", secret.expose())));
/// assert!(looks_like_secret(&format!(" \"{}\"\n", secret.expose())));
/// ```
pub fn looks_like_secret(value: &str) -> bool {
    // Anywhere in the value: pasted with `Bearer `, quotes or spaces around it, it is still one.
    !is_key_id(value)
        && ["ak_", "mt_"].iter().any(|prefix| {
            value.match_indices(prefix).any(|(at, _)| {
                let body = value[at + prefix.len()..].bytes().take_while(u8::is_ascii_alphanumeric);
                body.count() >= RANDOM_LEN / 2
            })
        })
}

/// An id as a message quotes it, in backticks; a value shaped like a secret
/// ([`looks_like_secret`]) is described, not quoted.
pub fn quote_id(id: &str) -> String {
    if looks_like_secret(id) {
        "(not shown: it has the shape of a key's secret, not of an id)".to_owned()
    } else {
        format!("`{}`", id.escape_debug())
    }
}

/// Appends `n` uniformly distributed base62 characters (rejection sampling: bytes ≥ 248 are
/// dropped so that `byte % 62` is unbiased).
fn push_random_base62(out: &mut String, n: usize) -> Result<(), getrandom::Error> {
    let mut pushed = 0;
    let mut buf = [0u8; 64];
    while pushed < n {
        getrandom::fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| b < 248) {
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
            pushed += 1;
            if pushed == n {
                break;
            }
        }
    }
    Ok(())
}

fn encode_checksum(mut crc: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    out
}

/// CRC-32 (IEEE 802.3), as zlib's `crc32`. `crc32fast` rather than a hand-written table: it
/// reads 16 bytes a step, several times faster on the 36 bytes checked on every request.
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base62_alphabet_byte_by_byte() {
        for b in 0..=255u8 {
            assert_eq!(is_base62(b), b.is_ascii_alphanumeric(), "byte {b:#04x}");
        }
    }

    #[test]
    fn hashes_are_equal_exactly_when_every_byte_is() {
        use std::hash::BuildHasher;
        let a = SecretHash::of("ak_example");
        assert_eq!(a, SecretHash::from_slice(a.as_bytes()).unwrap());
        let hasher = std::hash::RandomState::new();
        assert_eq!(
            hasher.hash_one(a),
            hasher.hash_one(SecretHash::from_slice(a.as_bytes()).unwrap())
        );
        for i in 0..32 {
            for bit in [0x01, 0x80] {
                let mut bytes = *a.as_bytes();
                bytes[i] ^= bit;
                let b = SecretHash::from_slice(&bytes).unwrap();
                assert_ne!(a, b, "byte {i}, bit {bit:#x}");
                assert!(!a.ct_eq(&b));
            }
        }
    }

    /// Fails to compile if `Secret` stops wiping its bytes on drop.
    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn secrets_are_wiped_on_drop_and_compare_by_content() {
        wiped_on_drop::<WipedString>();
        wiped_on_drop::<Secret>();
        let a = Secret::generate(KeyKind::ApiKey).unwrap();
        assert_eq!(a, a.clone());
        let mut near = a.expose().to_owned();
        let last = near.pop().unwrap();
        near.push(if last == 'a' { 'b' } else { 'a' });
        assert_ne!(a, Secret(WipedString(Zeroizing::new(near))));
        assert_ne!(a, Secret(WipedString(Zeroizing::new(a.expose()[..10].to_owned()))));
    }

    #[test]
    fn wiped_strings_are_built_at_their_final_size() {
        let header = wiped_concat(&["Bearer ", "sk_test_abc"]);
        assert_eq!(header.as_str(), "Bearer sk_test_abc");
        // Never grown, so never moved: no copy of its first bytes left behind.
        assert_eq!(header.capacity(), header.len());
        assert_eq!(wiped_concat(&[]).as_str(), "");
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn secrets_have_the_documented_shape_and_are_unique() {
        let a = Secret::generate(KeyKind::M2mToken).unwrap();
        let b = Secret::generate(KeyKind::M2mToken).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 3 + BODY_LEN);
        assert!(a.expose().starts_with("mt_"));
        assert_eq!(check_secret(a.expose()), Ok(KeyKind::M2mToken));
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", a.hash()).contains(a.expose()));
    }

    #[test]
    fn checksum_catches_changes_and_a_swapped_prefix() {
        let s = Secret::generate(KeyKind::ApiKey).unwrap();
        let body = &s.expose()[3..];
        assert_eq!(check_secret(&format!("mt_{body}")), Err(InvalidReason::BadChecksum));
        assert_eq!(
            check_secret(&s.expose()[..s.expose().len() - 1]),
            Err(InvalidReason::Malformed)
        );
        assert_eq!(
            check_secret(&format!("{}-", &s.expose()[..s.expose().len() - 1])),
            Err(InvalidReason::Malformed)
        );
        assert_eq!(check_secret("oat_x"), Err(InvalidReason::Malformed));
        let mut caught = 0;
        for i in 3..s.expose().len() {
            let mut t = s.expose().as_bytes().to_vec();
            t[i] = if t[i] == b'Z' { b'Y' } else { b'Z' };
            if check_secret(std::str::from_utf8(&t).unwrap()) == Err(InvalidReason::BadChecksum) {
                caught += 1;
            }
        }
        assert_eq!(caught, s.expose().len() - 3, "every single-character change is caught");
    }

    #[test]
    fn ids_look_like_clerks() {
        let id = generate_id(KeyKind::ApiKey).unwrap();
        assert_eq!(id.len(), 35);
        assert!(id.starts_with("ak_"));
        assert!(
            id[3..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
