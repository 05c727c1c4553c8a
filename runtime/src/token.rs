//! The four kinds of bearer token, and sets of them that can be built in `const` context.
//! Defined in `tokengate-core`, which the attributes share.
//!
//! ```
//! use tokengate_runtime::{TokenType, TokenTypes};
//!
//! const MACHINES: TokenTypes = TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken);
//! assert!(MACHINES.contains(TokenType::ApiKey));
//! assert!(!MACHINES.contains(TokenType::SessionToken));
//! assert_eq!(MACHINES.to_string(), "api_key, m2m_token");
//! ```

pub use tokengate_core::token::{TokenType, TokenTypes};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_as_names() {
        for t in TokenType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str(), "serialized as its name");
        }
        const SET: TokenTypes = TokenTypes::from_slice(&[TokenType::ApiKey, TokenType::OAuthToken]);
        assert_eq!(serde_json::to_string(&SET).unwrap(), r#"["oauth_token","api_key"]"#);
    }
}
