//! What a valid scope, organization role and organization permission is, and what to say
//! about one that is not.
//!
//! ```
//! use tokengate_core::grammar::{ValueKind, validate_permission, validate_scope};
//!
//! assert!(validate_scope("write:users").is_ok());
//! assert!(validate_permission("org:invoices:create").is_ok());
//!
//! let error = ValueKind::Role.validate("admin").unwrap_err();
//! // For a value built at run time:
//! assert_eq!(error.to_string(), "role `admin` is not of the form `org:<role>` (e.g. `org:admin`)");
//! // For a value written in an attribute, with the fix in attribute syntax:
//! assert!(error.in_attribute().to_string().contains("write e.g. `\"org:admin\"`"));
//! ```
//!
//! - a **scope** is an RFC 6749 §3.3 `scope-token`: `1*( %x21 / %x23-5B / %x5D-7E )`,
//!   printable ASCII without spaces, `"` or `\`;
//! - a **role** is `org:<key>`;
//! - a **permission** is `org:<key>:<key>`;
//!
//! where a key is one or more ASCII letters, digits, `_` or `-`. The two renderings of an
//! error say the same thing: [`Display`](fmt::Display) for a value handed over at run time,
//! [`ValueError::in_attribute`] for a string literal in an attribute.

use std::fmt;

/// What a required value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// An OAuth-style scope carried by machine tokens (`write:users`).
    Scope,
    /// The organization role of a session (`org:admin`).
    Role,
    /// An organization permission of a session (`org:invoices:create`).
    Permission,
    /// A Clerk Billing feature of a session (`exports`, `o:exports`, `u:exports`).
    Feature,
    /// A Clerk Billing plan of a session (`pro`, `o:pro`, `u:pro`).
    Plan,
    /// An authentication context class of an OAuth access token (RFC 9470 `acr`, e.g. `mfa`).
    Acr,
}

impl ValueKind {
    /// `scope`, `role`, `permission`, `feature`, `plan` or `acr`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueKind::Scope => "scope",
            ValueKind::Role => "role",
            ValueKind::Permission => "permission",
            ValueKind::Feature => "feature",
            ValueKind::Plan => "plan",
            ValueKind::Acr => "acr",
        }
    }

    /// Checks `value` against this kind's grammar.
    pub fn validate(self, value: &str) -> Result<(), ValueError<'_>> {
        match self {
            ValueKind::Scope => validate_scope(value),
            ValueKind::Role => validate_role(value),
            ValueKind::Permission => validate_permission(value),
            ValueKind::Feature | ValueKind::Plan => validate_billing(self, value),
            ValueKind::Acr => validate_acr(value),
        }
    }
}

/// The scope prefixes of a feature or plan: `o:` (the active organization's) and `u:` (the
/// user's); without one, either.
pub const BILLING_SCOPES: [&str; 2] = ["o", "u"];

/// Checks a feature or plan: `<name>`, `o:<name>` or `u:<name>`, the name a key (ASCII
/// letters, digits, `_`, `-`).
pub fn validate_billing(kind: ValueKind, value: &str) -> Result<(), ValueError<'_>> {
    let name = match value.split_once(':') {
        Some((scope, name)) if BILLING_SCOPES.contains(&scope) => name,
        Some((scope, _)) => return Err(ValueError::BillingScope { kind, value, scope }),
        None => value,
    };
    if is_key_part(name) {
        Ok(())
    } else {
        Err(ValueError::BillingName { kind, value })
    }
}

/// Checks an `acr` value (RFC 9470): printable ASCII without spaces, `"` or `\` (it travels
/// space-separated in a quoted `acr_values`), like a scope.
pub fn validate_acr(acr: &str) -> Result<(), ValueError<'_>> {
    if !acr.is_empty() && acr.chars().all(is_scope_char) {
        Ok(())
    } else {
        Err(ValueError::Acr(acr))
    }
}

/// Checks a scope: RFC 6749 §3.3, `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn validate_scope(scope: &str) -> Result<(), ValueError<'_>> {
    if scope.is_empty() {
        return Err(ValueError::EmptyScope);
    }
    match scope.chars().find(|c| !is_scope_char(*c)) {
        None => Ok(()),
        Some(character) => Err(ValueError::ScopeCharacter { scope, character }),
    }
}

/// Checks an organization role: `org:<role>`.
pub fn validate_role(role: &str) -> Result<(), ValueError<'_>> {
    match role.strip_prefix("org:") {
        Some(rest) if is_key_part(rest) => Ok(()),
        _ => Err(ValueError::Role(role)),
    }
}

/// Checks an organization permission: `org:<feature>:<action>`.
pub fn validate_permission(permission: &str) -> Result<(), ValueError<'_>> {
    let mut parts = permission.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("org"), Some(feature), Some(action), None) if is_key_part(feature) && is_key_part(action) => Ok(()),
        _ => Err(ValueError::Permission(permission)),
    }
}

/// A character RFC 6749 allows in a scope.
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// One part of a role or permission after `org:`: ASCII letters, digits, `_` and `-`.
fn is_key_part(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Why a value is not a valid scope, role or permission. [`Display`](fmt::Display) words it
/// for a value handed over at run time; [`ValueError::in_attribute`] for an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError<'a> {
    /// The scope is empty.
    EmptyScope,
    /// The scope holds a character RFC 6749 does not allow in one.
    ScopeCharacter {
        /// The scope.
        scope: &'a str,
        /// Its first character that is not allowed.
        character: char,
    },
    /// The role is not of the form `org:<role>`.
    Role(&'a str),
    /// The permission is not of the form `org:<feature>:<action>`.
    Permission(&'a str),
    /// A feature or plan with a scope prefix other than `o:` or `u:`.
    BillingScope {
        /// Feature or plan.
        kind: ValueKind,
        /// The value.
        value: &'a str,
        /// What stands before its first `:`.
        scope: &'a str,
    },
    /// A feature or plan whose name is empty or holds other characters than a key's.
    BillingName {
        /// Feature or plan.
        kind: ValueKind,
        /// The value.
        value: &'a str,
    },
    /// An `acr` value that is empty or holds a space, `"`, `\\` or a non-ASCII character.
    Acr(&'a str),
}

impl<'a> ValueError<'a> {
    /// The message for the value written as a string literal in an attribute: the fix is
    /// given in attribute syntax.
    pub fn in_attribute(self) -> impl fmt::Display + 'a {
        InAttribute(self)
    }

    fn write(self, f: &mut fmt::Formatter<'_>, in_attribute: bool) -> fmt::Result {
        match self {
            ValueError::EmptyScope if in_attribute => {
                f.write_str("a scope cannot be empty; write the scope name, e.g. `\"write:users\"`")
            }
            ValueError::EmptyScope => f.write_str("a scope cannot be empty"),
            ValueError::ScopeCharacter { scope, character } => write!(
                f,
                "scope `{}` contains {}, which RFC 6749 does not allow in a scope; use printable ASCII without spaces, `\"` or `\\`",
                scope.escape_debug(),
                Character(character, in_attribute),
            ),
            ValueError::Role(role) if in_attribute => write!(
                f,
                "role `{}` is not of the form `org:<role>`; write e.g. `\"org:admin\"` (letters, digits, `_` and `-` after `org:`)",
                role.escape_debug()
            ),
            ValueError::Role(role) => write!(f, "role `{role}` is not of the form `org:<role>` (e.g. `org:admin`)"),
            ValueError::Permission(permission) if in_attribute => write!(
                f,
                "permission `{}` is not of the form `org:<feature>:<action>`; write e.g. `\"org:invoices:create\"`",
                permission.escape_debug()
            ),
            ValueError::Permission(permission) => write!(
                f,
                "permission `{permission}` is not of the form `org:<feature>:<action>` (e.g. `org:invoices:create`)"
            ),
            ValueError::BillingScope { kind, value, scope } => write!(
                f,
                "{kind} `{}` has the scope `{}:`, which is not one; {}",
                value.escape_debug(),
                scope.escape_debug(),
                BillingFix(kind, scope, in_attribute)
            ),
            ValueError::BillingName { kind, value: "" } => write!(
                f,
                "a {kind} cannot be empty; write its name{}",
                if in_attribute {
                    format!(", e.g. `\"{}\"`", kind.example())
                } else {
                    String::new()
                }
            ),
            ValueError::BillingName { kind, value } => write!(
                f,
                "{kind} `{}` is not a {kind} name: write `name`, `o:name` (the active organization's) or `u:name` (the user's), the name made of ASCII letters, digits, `_` and `-`{}",
                value.escape_debug(),
                if in_attribute {
                    format!(", e.g. `\"{}\"`", kind.example())
                } else {
                    String::new()
                }
            ),
            ValueError::Acr(acr) => write!(
                f,
                "acr `{}` is not an authentication context class: use printable ASCII without spaces, `\"` or `\\`{}",
                acr.escape_debug(),
                if in_attribute { ", e.g. `\"mfa\"`" } else { "" }
            ),
        }
    }
}

impl ValueKind {
    /// An example value of this kind.
    pub const fn example(self) -> &'static str {
        match self {
            ValueKind::Scope => "write:users",
            ValueKind::Role => "org:admin",
            ValueKind::Permission => "org:invoices:create",
            ValueKind::Feature => "exports",
            ValueKind::Plan => "o:pro",
            ValueKind::Acr => "mfa",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fix for a feature or plan with an unknown scope: the nearest of `o:` / `u:`.
struct BillingFix<'a>(ValueKind, &'a str, bool);

impl fmt::Display for BillingFix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BillingFix(kind, scope, in_attribute) = *self;
        let lower = scope.to_ascii_lowercase();
        let guess = if lower.starts_with('o') {
            Some("o")
        } else if lower.starts_with('u') {
            Some("u")
        } else {
            None
        };
        match guess {
            Some(g) if in_attribute => write!(
                f,
                "did you mean `{g}:`? The scopes are `o:` (the active organization's {kind}) and `u:` (the user's); without one, either"
            ),
            _ => write!(
                f,
                "the scopes are `o:` (the active organization's {kind}) and `u:` (the user's); without one, either"
            ),
        }
    }
}

impl fmt::Display for ValueError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl std::error::Error for ValueError<'_> {}

/// [`ValueError::in_attribute`].
struct InAttribute<'a>(ValueError<'a>);

impl fmt::Display for InAttribute<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

/// A character a scope may not hold, named for a message; in an attribute, a space is most
/// likely two scopes in one string.
struct Character(char, bool);

impl fmt::Display for Character {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ' ' if self.1 => f.write_str("a space (one attribute argument is one scope: write `\"a\", \"b\"` for two)"),
            ' ' => f.write_str("a space"),
            '"' => f.write_str("`\"`"),
            '\\' => f.write_str("`\\`"),
            c if c.is_control() => f.write_str("a control character"),
            c => write!(f, "`{c}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        for good in ["write:users", "!#[]~", "a"] {
            assert_eq!(validate_scope(good), Ok(()), "{good:?}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "a\nb", "a\tb", "é", "\x7f"] {
            assert!(validate_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_and_permissions() {
        for good in ["org:admin", "org:in-voi_ce5"] {
            assert_eq!(validate_role(good), Ok(()), "{good:?}");
        }
        for bad in ["admin", "org:", "org:ad min", "org:a:b", "user:admin"] {
            assert_eq!(validate_role(bad), Err(ValueError::Role(bad)), "{bad:?}");
        }
        for good in ["org:invoices:create", "org:in-voices:cre_ate"] {
            assert_eq!(validate_permission(good), Ok(()), "{good:?}");
        }
        for bad in [
            "org:invoices",
            "org:invoices:create:x",
            "org::create",
            "org:invoices:",
            "user:invoices:create",
        ] {
            assert_eq!(validate_permission(bad), Err(ValueError::Permission(bad)), "{bad:?}");
        }
        assert_eq!(ValueKind::Permission.validate("org:a:b"), Ok(()));
        assert_eq!(ValueKind::Scope.validate(""), Err(ValueError::EmptyScope));
    }

    #[test]
    fn features_plans_and_acr() {
        for good in ["exports", "o:exports", "u:ex-ports_2"] {
            assert_eq!(ValueKind::Feature.validate(good), Ok(()), "{good:?}");
        }
        for bad in ["", "o:", "x:pro", "org:pro", "o:a:b", "pro plan", "o:é"] {
            assert!(ValueKind::Plan.validate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ValueKind::Plan
                .validate("org:pro")
                .unwrap_err()
                .in_attribute()
                .to_string(),
            "plan `org:pro` has the scope `org:`, which is not one; did you mean `o:`? The scopes are `o:` (the active organization's plan) and `u:` (the user's); without one, either"
        );
        assert_eq!(
            ValueKind::Feature.validate("").unwrap_err().to_string(),
            "a feature cannot be empty; write its name"
        );
        assert!(validate_acr("urn:mace:incommon:iap:silver").is_ok());
        for bad in ["", "m fa", "a\"b", "é"] {
            assert_eq!(validate_acr(bad), Err(ValueError::Acr(bad)), "{bad:?}");
        }
    }

    #[test]
    fn messages() {
        let space = ValueError::ScopeCharacter {
            scope: "a b",
            character: ' ',
        };
        assert_eq!(
            space.to_string(),
            "scope `a b` contains a space, which RFC 6749 does not allow in a scope; use printable ASCII without spaces, `\"` or `\\`"
        );
        assert_eq!(
            space.in_attribute().to_string(),
            "scope `a b` contains a space (one attribute argument is one scope: write `\"a\", \"b\"` for two), which RFC 6749 does not allow in a scope; use printable ASCII without spaces, `\"` or `\\`"
        );
        assert_eq!(ValueError::EmptyScope.to_string(), "a scope cannot be empty");
        assert_eq!(
            ValueError::Permission("org:x").to_string(),
            "permission `org:x` is not of the form `org:<feature>:<action>` (e.g. `org:invoices:create`)"
        );
        assert_eq!(
            ValueError::Permission("org:x").in_attribute().to_string(),
            "permission `org:x` is not of the form `org:<feature>:<action>`; write e.g. `\"org:invoices:create\"`"
        );
        assert_eq!(
            ValueError::Role("a\"b").in_attribute().to_string(),
            "role `a\\\"b` is not of the form `org:<role>`; write e.g. `\"org:admin\"` (letters, digits, `_` and `-` after `org:`)"
        );
        let tab = validate_scope("a\tb").unwrap_err();
        assert!(tab.to_string().contains("contains a control character"), "{tab}");
        let accent = validate_scope("café").unwrap_err();
        let accent = accent.in_attribute().to_string();
        assert!(accent.contains("contains `é`"), "{accent}");
    }
}
