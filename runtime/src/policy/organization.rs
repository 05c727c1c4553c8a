//! Organization roles and permissions of a session, compared as Clerk's `@clerk/shared`
//! (`checkOrgAuthorization`) compares them: an active organization is a non-empty id; a
//! role matches when both read the same after `prefixWithOrg` (any run of leading `org:`
//! replaced by one); a permission is held when the list holds the required one after
//! `prefixWithOrg`.

use crate::auth::AuthInfo;

/// Whether the session has an active organization.
pub(crate) fn active(auth: &AuthInfo) -> bool {
    auth.org_id.as_deref().is_some_and(|id| !id.is_empty())
}

/// Whether the session's role is `required`.
pub(crate) fn has_role(auth: &AuthInfo, required: &str) -> bool {
    match auth.org_role.as_deref() {
        Some(role) if !role.is_empty() => unprefixed(role) == unprefixed(required),
        _ => false,
    }
}

/// Whether the session holds the permission `required`.
pub(crate) fn has_permission(auth: &AuthInfo, required: &str) -> bool {
    let required = unprefixed(required);
    auth.org_permissions
        .iter()
        .any(|p| p.strip_prefix("org:") == Some(required))
}

/// `value` without its leading run of `org:`: Clerk's `prefixWithOrg(value)` is `org:` and
/// this, so two values are equal after `prefixWithOrg` when these are (no allocation).
fn unprefixed(value: &str) -> &str {
    let mut rest = value;
    while let Some(r) = rest.strip_prefix("org:") {
        rest = r;
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenType;
    use arcstr::ArcStr;

    #[test]
    fn roles_compare_after_the_org_prefix() {
        let mut a = AuthInfo::new(TokenType::SessionToken);
        a.org_role = Some("admin".into());
        assert!(has_role(&a, "org:admin"));
        a.org_role = Some("org:org:admin".into());
        assert!(has_role(&a, "org:admin"));
        a.org_role = Some(ArcStr::new());
        assert!(!has_role(&a, "org:admin"));
        a.org_permissions = vec!["org:read".into()];
        assert!(has_permission(&a, "org:org:read"));
        assert!(!active(&a));
        a.org_id = Some(ArcStr::new());
        assert!(!active(&a));
    }
}
