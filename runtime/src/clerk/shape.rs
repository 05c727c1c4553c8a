//! The shape of a Clerk machine token's opaque part, checked before any Backend API call so
//! that strings Clerk cannot have issued never spend the instance's quota.

/// Bounds on the opaque part of a machine token, checked before any API call so that random
/// strings never spend the instance's Backend API quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenShape {
    /// Fewest characters after the prefix (default 16).
    pub min_len: usize,
    /// Most characters after the prefix (default 256).
    pub max_len: usize,
}

impl Default for TokenShape {
    fn default() -> Self {
        TokenShape {
            min_len: 16,
            max_len: 256,
        }
    }
}

impl TokenShape {
    /// Whether `rest` (the token without its prefix) fits: length within bounds and only
    /// `A–Z a–z 0–9 _ -`.
    pub fn accepts(&self, rest: &str) -> bool {
        (self.min_len..=self.max_len).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = TokenShape::default();
        assert!(s.accepts("abcdefghijklmnop"));
        assert!(!s.accepts("short"));
        assert!(!s.accepts("abcdefghijklmnop!"));
        assert!(!s.accepts(&"a".repeat(257)));
    }
}
