//! RFC 9470 step-up for OAuth access tokens: the `acr` the token was issued with, and how long
//! ago the user authenticated (`auth_time`, RFC 9068 §2.2.1).
//!
//! A token without a string `acr` holds none; one without a numeric `auth_time` (or one more
//! than a minute in the future) fails every maximum age. A refusal is a `401` whose challenge
//! (`error="insufficient_user_authentication"`, `acr_values`, `max_age`) tells the client
//! what to ask the authorization server for.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How far in the future an `auth_time` may be (clock skew), in seconds.
const SKEW: i64 = 60;

/// Whether the token's `acr` claim is `required`.
pub(crate) fn has_acr(claims: &Value, required: &str) -> bool {
    matches!(claims.get("acr"), Some(Value::String(acr)) if acr == required)
}

/// Whether the user authenticated at most `max_age` seconds ago.
pub(crate) fn recent(claims: &Value, max_age: &str) -> bool {
    let (Some(auth_time), Ok(max_age)) = (auth_time(claims), max_age.parse::<i64>()) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    auth_time <= now.saturating_add(SKEW) && now.saturating_sub(auth_time) <= max_age
}

/// `auth_time` as seconds since the epoch: an integer, or a finite number (floored).
fn auth_time(claims: &Value) -> Option<i64> {
    let Some(Value::Number(n)) = claims.get("auth_time") else {
        return None;
    };
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn acr_and_age() {
        let claims = json!({"acr": "mfa", "auth_time": now() - 100});
        assert!(has_acr(&claims, "mfa") && !has_acr(&claims, "phr"));
        assert!(recent(&claims, "600") && !recent(&claims, "60"));
        assert!(!has_acr(&json!({"acr": ["mfa"]}), "mfa"));
        assert!(!recent(&json!({"auth_time": "1"}), "600"));
        assert!(!recent(&json!({}), "600"));
        assert!(!recent(&json!({"auth_time": now() + 3600}), "600"), "from the future");
    }
}
