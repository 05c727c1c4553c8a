//! Clerk Billing features and plans of a session: the `fea` and `pla` claims, read exactly as
//! Clerk's `@clerk/shared` (`checkBillingAuthorization`, `splitByScope`) reads them.
//!
//! A claim is a comma-separated list of `scope:name` entries: `o:` the active organization's,
//! `u:` the user's, `ou:` / `uo:` both; other scopes are ignored. An entry without `:` makes
//! the whole claim unreadable, and an absent, empty or non-string claim holds nothing: the
//! requirement fails (closed). A required `o:name` looks among the organization's, `u:name`
//! among the user's, a bare `name` among both.

use serde_json::Value;

/// The organization's and the user's entries of a claim (none for `""`); `None` when an entry
/// has no `:`.
pub(crate) fn split_by_scope(claim: &str) -> Option<(Vec<&str>, Vec<&str>)> {
    let mut org = Vec::new();
    let mut user = Vec::new();
    if claim.is_empty() {
        return Some((org, user));
    }
    for part in claim.split(',') {
        let (scope, name) = js_trim(part).split_once(':')?;
        match scope {
            "o" => org.push(name),
            "u" => user.push(name),
            "ou" | "uo" => {
                org.push(name);
                user.push(name);
            }
            _ => {}
        }
    }
    Some((org, user))
}

/// Whether the session's claim (`fea` or `pla`) holds `required` (`name`, `o:name`, `u:name`).
pub(crate) fn entitled(claim: Option<&Value>, required: &str) -> bool {
    let Some(Value::String(claim)) = claim else {
        return false;
    };
    if claim.is_empty() {
        return false;
    }
    let Some((org, user)) = split_by_scope(claim) else {
        return false;
    };
    match required.split_once(':') {
        Some(("o", name)) => org.contains(&name),
        Some(("u", name)) => user.contains(&name),
        Some(_) => false,
        None => org.contains(&required) || user.contains(&required),
    }
}

/// JavaScript's `String.prototype.trim`: white space and line terminators at both ends.
pub(crate) fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_as_clerk_reads_them() {
        let fea = json!("o:exports, u:profile,ou:both,x:other,o:a:b");
        let has = |r: &str| entitled(Some(&fea), r);
        assert!(has("exports") && has("o:exports") && !has("u:exports"));
        assert!(has("profile") && has("u:profile") && !has("o:profile"));
        assert!(has("o:both") && has("u:both") && has("both"));
        assert!(!has("other") && !has("a"));
        assert!(
            has("a:b") || !has("o:a"),
            "the name is everything after the first colon"
        );
        assert!(
            !entitled(Some(&json!("o:exports,broken")), "exports"),
            "an entry without `:`"
        );
        assert!(!entitled(Some(&json!(["o:exports"])), "exports"));
        assert!(!entitled(Some(&json!("")), "exports"));
        assert!(!entitled(None, "exports"));
    }
}
