//! The Backend API's verify responses (`api_key`, `machine_to_machine_token`,
//! `clerk_idp_oauth_access_token`) and their mapping to [`AuthInfo`].
//!
//! A `200` is not trusted on its own: `revoked: true`, `expired: true` or an `expiration` in
//! the past reject the token. Anything that does not match the schema is an error (the caller
//! answers `503`, never `200`).
//!
//! ```
//! use tokengate_runtime::clerk::resources::parse_verify_response;
//! use tokengate_runtime::rejection::InvalidReason;
//! use tokengate_runtime::TokenType;
//!
//! let body = br#"{"object":"api_key","id":"ak_1","type":"api_key","subject":"user_1","name":"ci",
//!   "claims":null,"scopes":["read"],"revoked":true,"revocation_reason":"leaked","expired":false,
//!   "expiration":null,"created_by":null,"last_used_at":null,"created_at":1,"updated_at":1}"#;
//! let verdict = parse_verify_response(TokenType::ApiKey, body, 1_700_000_000_000).unwrap();
//! assert_eq!(verdict.unwrap_err(), InvalidReason::Revoked);
//! ```

use serde::Deserialize;

use crate::auth::AuthInfo;
use crate::rejection::InvalidReason;
use crate::token::TokenType;

/// Why a response body could not be used. Never contains the body (it may echo the token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {token_type} verify response from Clerk: {problem}")]
pub struct UnexpectedResponse {
    token_type: TokenType,
    problem: String,
}

fn unexpected(token_type: TokenType, problem: impl Into<String>) -> UnexpectedResponse {
    UnexpectedResponse {
        token_type,
        problem: problem.into(),
    }
}

/// Fields common to the three resources. Only what tokengate reads is required.
#[derive(Deserialize)]
struct Resource {
    object: String,
    id: String,
    subject: String,
    revoked: bool,
    expired: bool,
    /// Milliseconds since the epoch; `null` never expires. Required (nullable) by the spec,
    /// hence a `Value`: a missing field is an error, not `None`.
    expiration: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    claims: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<String>,
}

/// `{"active": false}`: an OAuth JWT access token that is not active.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inactive {
    active: bool,
}

/// Parses a `200` body for `token_type` at `now_ms` (milliseconds since the epoch): the
/// verified identity, the reason a valid response still rejects the token, or an error when
/// the body is not what the specification promises.
pub fn parse_verify_response(
    token_type: TokenType,
    body: &[u8],
    now_ms: i64,
) -> Result<Result<AuthInfo, InvalidReason>, UnexpectedResponse> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| unexpected(token_type, format!("not JSON ({})", e.classify_name())))?;
    if token_type == TokenType::OAuthToken && value.get("active").is_some() {
        let inactive: Inactive =
            serde_json::from_value(value).map_err(|_| unexpected(token_type, "bad `active` object"))?;
        if inactive.active {
            return Err(unexpected(token_type, "`active: true` without a token resource"));
        }
        return Ok(Err(InvalidReason::Inactive));
    }
    let resource: Resource = serde_json::from_value(value)
        .map_err(|e| unexpected(token_type, format!("does not match the schema ({})", e.classify_name())))?;
    check_shape(token_type, &resource)?;
    if resource.revoked {
        return Ok(Err(InvalidReason::Revoked));
    }
    if resource.expired {
        return Ok(Err(InvalidReason::Expired));
    }
    let expiration = match expiration_seconds(token_type, &resource.expiration, now_ms)? {
        Ok(expiration) => expiration,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut info = AuthInfo::new(token_type);
    info.id = Some(resource.id.into());
    info.subject = Some(resource.subject.into());
    info.name = resource.name.map(Into::into);
    info.client_id = resource.client_id.map(Into::into);
    info.scopes = resource.scopes.unwrap_or_default();
    info.expiration = expiration;
    info.claims = match resource.claims {
        None | Some(serde_json::Value::Null) => serde_json::Value::Object(serde_json::Map::new()),
        Some(claims) => claims,
    };
    Ok(Ok(info.with_derived_ids()))
}

/// What the specification promises of `token_type`'s resource beyond its schema: its
/// `object`, its id's prefix, a subject, and the members that type must carry.
fn check_shape(token_type: TokenType, resource: &Resource) -> Result<(), UnexpectedResponse> {
    let (object, prefix) = match token_type {
        TokenType::ApiKey => ("api_key", "ak_"),
        TokenType::M2mToken => ("machine_to_machine_token", "mt_"),
        TokenType::OAuthToken => ("clerk_idp_oauth_access_token", "oat_"),
        TokenType::SessionToken => return Err(unexpected(token_type, "session tokens are not verified by the API")),
    };
    if resource.object != object {
        return Err(unexpected(token_type, format!("`object` is not `{object}`")));
    }
    if !resource.id.starts_with(prefix) {
        return Err(unexpected(token_type, format!("`id` does not start with `{prefix}`")));
    }
    if resource.subject.is_empty() {
        return Err(unexpected(token_type, "empty `subject`"));
    }
    if token_type == TokenType::OAuthToken && resource.client_id.as_deref().is_none_or(str::is_empty) {
        return Err(unexpected(token_type, "missing `client_id`"));
    }
    if token_type != TokenType::M2mToken && resource.scopes.is_none() {
        return Err(unexpected(token_type, "missing `scopes`"));
    }
    if token_type == TokenType::ApiKey && resource.name.is_none() {
        return Err(unexpected(token_type, "missing `name`"));
    }
    Ok(())
}

/// The resource's `expiration` (milliseconds, or `null` for never) in whole seconds, or
/// `Expired` when it is not after `now_ms`.
fn expiration_seconds(
    token_type: TokenType,
    expiration: &serde_json::Value,
    now_ms: i64,
) -> Result<Result<Option<i64>, InvalidReason>, UnexpectedResponse> {
    match expiration.as_f64() {
        None if expiration.is_null() => Ok(Ok(None)),
        Some(ms) if ms.is_finite() => {
            if ms <= now_ms as f64 {
                return Ok(Err(InvalidReason::Expired));
            }
            // Seconds, rounded down: the token is never held valid past its own expiration.
            Ok(Ok(Some((ms / 1000.0).floor() as i64)))
        }
        _ => Err(unexpected(token_type, "`expiration` is neither a number nor null")),
    }
}

/// A `serde_json` error category, without the input (which may hold the token).
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn api_key() -> serde_json::Value {
        json!({"object":"api_key","id":"ak_3beecc9c60adb5f9b850e91a8ee1e992","type":"api_key",
            "subject":"org_2xhFjEI5X2qWRvtV13BzSj8H6Dk","name":"ci","description":null,
            "claims":{"tier":"gold"},"scopes":["read","write"],"revoked":false,"revocation_reason":null,
            "expired":false,"expiration":NOW + 90_500,"created_by":null,"last_used_at":null,
            "created_at":1,"updated_at":1})
    }

    fn parse(t: TokenType, v: &serde_json::Value) -> Result<Result<AuthInfo, InvalidReason>, UnexpectedResponse> {
        parse_verify_response(t, &serde_json::to_vec(v).unwrap(), NOW)
    }

    #[test]
    fn maps_an_api_key() {
        let info = parse(TokenType::ApiKey, &api_key()).unwrap().unwrap();
        assert_eq!(info.org_id.as_deref(), Some("org_2xhFjEI5X2qWRvtV13BzSj8H6Dk"));
        assert_eq!(info.user_id, None);
        assert_eq!(info.name.as_deref(), Some("ci"));
        assert_eq!(info.expiration, Some(NOW / 1000 + 90));
        assert_eq!(info.claims, json!({"tier":"gold"}));
        assert!(info.has_scope("write"));
    }

    #[test]
    fn rejections_despite_a_200() {
        let mut v = api_key();
        v["expiration"] = json!(NOW - 1);
        assert_eq!(parse(TokenType::ApiKey, &v).unwrap(), Err(InvalidReason::Expired));
        let mut v = api_key();
        v["expired"] = json!(true);
        assert_eq!(parse(TokenType::ApiKey, &v).unwrap(), Err(InvalidReason::Expired));
        let mut v = api_key();
        v["revoked"] = json!(true);
        assert_eq!(parse(TokenType::ApiKey, &v).unwrap(), Err(InvalidReason::Revoked));
        assert_eq!(
            parse(TokenType::OAuthToken, &json!({"active": false})).unwrap(),
            Err(InvalidReason::Inactive)
        );
    }

    #[test]
    fn unexpected_bodies_are_errors() {
        assert!(parse_verify_response(TokenType::ApiKey, b"<html>", NOW).is_err());
        assert!(parse(TokenType::ApiKey, &json!({})).is_err());
        assert!(parse(TokenType::ApiKey, &json!([1])).is_err());
        assert!(parse(TokenType::M2mToken, &api_key()).is_err());
        let mut v = api_key();
        v["revoked"] = json!("false");
        assert!(parse(TokenType::ApiKey, &v).is_err());
        let mut v = api_key();
        v.as_object_mut().unwrap().remove("expiration");
        assert!(parse(TokenType::ApiKey, &v).is_err());
        assert!(parse(TokenType::OAuthToken, &json!({"active": true})).is_err());
    }
}
