//! Clerk's organization claims in a session token, v1 or v2, mapped to [`AuthInfo`].
//!
//! v1 carries `org_id`, `org_role`, `org_slug` and `org_permissions`; v2 (`v: 2`) carries
//! `o.{id,rol,slg,per,fpm}`, with the features in `fea` and the permissions packed as one
//! bit mask per feature, read as Clerk's `@clerk/shared` reads them (a differential test,
//! `runtime/tests/clerk_differential.rs`, compares the decisions with Clerk's own code):
//!
//! ```
//! use tokengate_runtime::jwt::claims::clerk_v2_permissions;
//!
//! // Features `o:invoices` and `o:reports`; permissions `read`, `create`;
//! // fpm `3,1`: invoices has both (0b11), reports has `read` (0b01).
//! let perms = clerk_v2_permissions(Some("o:invoices,o:reports,u:profile"), Some("read,create"), Some("3,1"));
//! assert_eq!(perms, ["org:invoices:read", "org:invoices:create", "org:reports:read"]);
//! ```

use arcstr::ArcStr;
use serde_json::{Map, Value};

use super::claims::{optional_string, string_list};
use crate::auth::AuthInfo;
use crate::policy::billing::{js_trim, split_by_scope};
use crate::rejection::InvalidReason;

/// Reads Clerk's organization claims, v2 (`v: 2`, `o`) or v1 (`org_*`).
pub(super) fn organization(claims: &Map<String, Value>, info: &mut AuthInfo) -> Result<(), InvalidReason> {
    if claims.get("v").and_then(Value::as_i64) == Some(2) {
        return organization_v2(claims, info);
    }
    info.org_id = optional_string(claims, "org_id")?.map(ArcStr::from);
    info.org_slug = optional_string(claims, "org_slug")?.map(ArcStr::from);
    info.org_role = optional_string(claims, "org_role")?.map(ArcStr::from);
    info.org_permissions = string_list(claims.get("org_permissions"))?;
    Ok(())
}

/// v2, read as Clerk's `@clerk/shared` (`__experimental_JWTPayloadToAuthObjectProperties`)
/// reads it. Where Clerk's parser throws — an `fea`, `o.per` or `o.fpm` that is not a string
/// (and not empty), an `fea` entry without `:` — Clerk refuses the session; so does this
/// (`invalid-claims`). An `o` that is not an object names no organization.
fn organization_v2(claims: &Map<String, Value>, info: &mut AuthInfo) -> Result<(), InvalidReason> {
    let Some(org) = claims.get("o").filter(|o| truthy(o)) else {
        return Ok(());
    };
    let fea = lenient_string(claims.get("fea"))?;
    let features = split_by_scope(fea.unwrap_or("")).ok_or(InvalidReason::InvalidClaims)?.0;
    let Value::Object(org) = org else {
        return Ok(());
    };
    info.org_id = optional_string(org, "id")?.map(ArcStr::from);
    info.org_slug = optional_string(org, "slg")?.map(ArcStr::from);
    info.org_role = optional_string(org, "rol")?
        .filter(|r| !r.is_empty())
        .map(|r| arcstr::format!("org:{r}"));
    // `parsePermissions`: nothing unless both are truthy; then both are split.
    let (per, fpm) = (org.get("per"), org.get("fpm"));
    if per.is_some_and(truthy) && fpm.is_some_and(truthy) {
        info.org_permissions = permissions(&features, lenient_string(per)?, lenient_string(fpm)?);
    }
    Ok(())
}

/// A claim that JavaScript reads with `x.split(…)` after `if (!x)`: a falsy value (absent,
/// `null`, `false`, `0`, `""`) is none, a string is itself, anything else makes Clerk throw.
fn lenient_string(value: Option<&Value>) -> Result<Option<&str>, InvalidReason> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(v) if truthy(v) => Err(InvalidReason::InvalidClaims),
        _ => Ok(None),
    }
}

/// JavaScript's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Decodes Clerk's v2 organization permissions.
///
/// `fea` lists features as `scope:name` (`o:invoices,u:profile`; `o:`, `ou:` and `uo:` are the
/// organization's); `per` lists permission names; `fpm` holds, for each organization feature
/// in order, a decimal bit mask over `per` (bit 0 = first permission). The result is
/// `org:<feature>:<permission>` for each set bit, as Clerk's SDK computes it. Malformed
/// entries grant nothing.
pub fn clerk_v2_permissions(fea: Option<&str>, per: Option<&str>, fpm: Option<&str>) -> Vec<String> {
    let features = fea.and_then(split_by_scope).map(|(org, _)| org).unwrap_or_default();
    permissions(&features, per.filter(|p| !p.is_empty()), fpm.filter(|f| !f.is_empty()))
}

fn permissions(features: &[&str], per: Option<&str>, fpm: Option<&str>) -> Vec<String> {
    let (Some(per), Some(fpm)) = (per, fpm) else {
        return Vec::new();
    };
    let permissions: Vec<&str> = per.split(',').map(js_trim).collect();
    let masks: Vec<&str> = fpm.split(',').map(js_trim).collect();
    let mut out = Vec::new();
    for (feature, mask) in features.iter().zip(&masks) {
        let Some(bits) = decimal_to_bits(mask) else {
            continue;
        };
        for (bit, permission) in bits.iter().zip(&permissions) {
            if *bit {
                out.push(format!("org:{feature}:{permission}"));
            }
        }
    }
    out
}

/// The bits of a decimal number of any length, least significant first.
fn decimal_to_bits(decimal: &str) -> Option<Vec<bool>> {
    if decimal.is_empty() || decimal.len() > 512 || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u8> = decimal.bytes().map(|b| b - b'0').collect();
    let mut bits = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        let mut remainder = 0;
        for d in digits.iter_mut() {
            let value = remainder * 10 + *d;
            *d = value / 2;
            remainder = value % 2;
        }
        bits.push(remainder == 1);
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_permission_decoding_edge_cases() {
        assert!(clerk_v2_permissions(None, Some("a"), Some("1")).is_empty());
        assert!(clerk_v2_permissions(Some("o:f"), Some("a"), Some("x")).is_empty());
        // More masks than features, bits beyond the permission list: ignored.
        assert_eq!(clerk_v2_permissions(Some("o:f"), Some("a"), Some("3,1")), ["org:f:a"]);
        // A mask larger than u64 decodes exactly.
        let big = "36893488147419103232"; // 2^65
        assert_eq!(decimal_to_bits(big).map(|b| b.len()), Some(66));
        assert_eq!(decimal_to_bits("0"), Some(vec![]));
        assert_eq!(decimal_to_bits("6"), Some(vec![false, true, true]));
    }
}
