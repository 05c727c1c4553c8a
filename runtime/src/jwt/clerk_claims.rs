//! Clerk's organization claims in a session token, v1 or v2, mapped to [`AuthInfo`].
//!
//! v1 carries `org_id`, `org_role`, `org_slug` and `org_permissions`; v2 (`v: 2`) carries
//! `o.{id,rol,slg,per,fpm}`, with the features in `fea` and the permissions packed as one
//! bit mask per feature:
//!
//! ```
//! use tokengate_runtime::jwt::claims::clerk_v2_permissions;
//!
//! // Features `o:invoices` and `o:reports`; permissions `read`, `create`;
//! // fpm `3,1`: invoices has both (0b11), reports has `read` (0b01).
//! let perms = clerk_v2_permissions(Some("o:invoices,o:reports,u:profile"), Some("read,create"), Some("3,1"));
//! assert_eq!(perms, ["org:invoices:read", "org:invoices:create", "org:reports:read"]);
//! ```

use serde_json::{Map, Value};

use super::claims::{optional_string, string_list};
use crate::auth::AuthInfo;
use crate::rejection::InvalidReason;

/// Reads Clerk's organization claims, v2 (`v: 2`, `o`) or v1 (`org_*`).
pub(super) fn organization(claims: &Map<String, Value>, info: &mut AuthInfo) -> Result<(), InvalidReason> {
    let version = claims.get("v").and_then(Value::as_i64).unwrap_or(1);
    if version == 2 {
        let Some(org) = claims.get("o") else {
            return Ok(());
        };
        let Value::Object(org) = org else {
            return Err(InvalidReason::InvalidClaims);
        };
        info.org_id = optional_string(org, "id")?.map(str::to_owned);
        info.org_slug = optional_string(org, "slg")?.map(str::to_owned);
        info.org_role = optional_string(org, "rol")?.map(|r| format!("org:{r}"));
        info.org_permissions = clerk_v2_permissions(
            optional_string(claims, "fea")?,
            optional_string(org, "per")?,
            optional_string(org, "fpm")?,
        );
    } else {
        info.org_id = optional_string(claims, "org_id")?.map(str::to_owned);
        info.org_slug = optional_string(claims, "org_slug")?.map(str::to_owned);
        info.org_role = optional_string(claims, "org_role")?.map(str::to_owned);
        info.org_permissions = string_list(claims.get("org_permissions"))?;
    }
    Ok(())
}

/// Decodes Clerk's v2 organization permissions.
///
/// `fea` lists features as `scope:name` (`o:invoices,u:profile`; a scope containing `o` is an
/// organization feature); `per` lists permission names; `fpm` holds, for each organization
/// feature in order, a decimal bit mask over `per` (bit 0 = first permission). The result is
/// `org:<feature>:<permission>` for each set bit, as Clerk's SDK computes it. Malformed
/// entries grant nothing.
pub fn clerk_v2_permissions(fea: Option<&str>, per: Option<&str>, fpm: Option<&str>) -> Vec<String> {
    let (Some(fea), Some(per), Some(fpm)) = (fea, per, fpm) else {
        return Vec::new();
    };
    if fea.is_empty() || per.is_empty() || fpm.is_empty() {
        return Vec::new();
    }
    let features: Vec<&str> = fea
        .split(',')
        .map(str::trim)
        .filter_map(|f| {
            let mut parts = f.split(':');
            let scope = parts.next()?;
            let name = parts.next()?;
            (scope.contains('o') && !name.is_empty()).then_some(name)
        })
        .collect();
    let permissions: Vec<&str> = per.split(',').map(str::trim).collect();
    let masks: Vec<&str> = fpm.split(',').map(str::trim).collect();
    let mut out = Vec::new();
    for (feature, mask) in features.iter().zip(&masks) {
        let Some(bits) = decimal_to_bits(mask) else {
            continue;
        };
        for (bit, permission) in bits.iter().zip(&permissions) {
            if *bit && !permission.is_empty() {
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
