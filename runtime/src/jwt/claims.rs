//! Claims: strict parsing of a JWT's JSON, the checks jsonwebtoken leaves to the caller, and
//! the mapping of Clerk's session, OAuth (RFC 9068) and M2M claims to [`AuthInfo`].
//!
//! What is checked here, beyond the signature:
//! - the JSON is an object with no duplicate member at any depth;
//! - `exp` is required and a number (`"exp": "9999999999"` is refused); `nbf` and `iat`,
//!   when present, are numbers and not in the future (beyond the leeway);
//! - when an issuer or audience is configured, `iss` / `aud` are present, of the right type
//!   and match (`"iss": 5` or an `iss` array is a wrong issuer);
//! - `sub` is a string; per kind: `sid` (unless allowed missing), `azp` against authorized
//!   parties and `sts` for sessions; `client_id`, `jti`, `iat` for OAuth tokens; an `mch_`
//!   subject and the required machine among the scopes for M2M tokens.
//!
//! Scope strings (`scope`, an M2M JWT's `scopes`) are split on the space character alone, as
//! RFC 6749 §3.3 separates scope tokens: `"read\twrite:users"` is one scope, not two.
//!
//! A session's organization claims, Clerk's v1 (`org_*`) or v2 (`v: 2`, `o`, `fea`), are
//! read in `jwt/clerk_claims.rs`; [`clerk_v2_permissions`] decodes v2's permissions.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

pub use super::clerk_claims::clerk_v2_permissions;
use super::clerk_claims::organization;
use crate::auth::AuthInfo;
use crate::classify::MACHINE_SUBJECT_PREFIX;
use crate::rejection::InvalidReason;
use crate::token::TokenType;

/// A JSON value parsed strictly: an object member named twice, at any depth, is an error.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if members.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate member"));
            }
        }
        Ok(Value::Object(members))
    }
}

/// Parses a JWT part: a JSON object without duplicate members.
pub(crate) fn parse_object(json: &[u8]) -> Result<Map<String, Value>, InvalidReason> {
    match serde_json::from_slice::<Strict>(json) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        _ => Err(InvalidReason::Malformed),
    }
}

/// The time checks, in seconds since the epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) now: i64,
    pub(crate) leeway: i64,
}

/// Rules for one kind of token, resolved from the configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClaimRules {
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) authorized_parties: Vec<String>,
    /// Whether a session with `sts: "pending"` is accepted (Clerk treats it as signed out).
    pub(crate) accept_pending: bool,
    /// Whether a session must carry `sid` (`SessionRules` sets it by default).
    pub(crate) require_sid: bool,
    /// The machine an M2M token must list among its scopes.
    pub(crate) machine: Option<String>,
}

/// A NumericDate: an integer or a finite number (RFC 7519 §2); strings are refused.
fn numeric_date(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
}

pub(super) fn optional_string<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, InvalidReason> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(InvalidReason::InvalidClaims),
    }
}

fn required_string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, InvalidReason> {
    optional_string(claims, name)?.ok_or(InvalidReason::InvalidClaims)
}

/// Checks the registered claims every kind shares and returns `exp`.
fn check_common(claims: &Map<String, Value>, rules: &ClaimRules, clock: Clock) -> Result<i64, InvalidReason> {
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(InvalidReason::InvalidClaims)?;
    let nbf = match claims.get("nbf") {
        None => None,
        Some(v) => Some(numeric_date(v).ok_or(InvalidReason::InvalidClaims)?),
    };
    let iat = match claims.get("iat") {
        None => None,
        Some(v) => Some(numeric_date(v).ok_or(InvalidReason::InvalidClaims)?),
    };
    if clock.now >= exp.saturating_add(clock.leeway) {
        return Err(InvalidReason::Expired);
    }
    if let Some(nbf) = nbf
        && nbf > clock.now.saturating_add(clock.leeway)
    {
        return Err(InvalidReason::NotYetValid);
    }
    if let Some(iat) = iat
        && iat > clock.now.saturating_add(clock.leeway)
    {
        return Err(InvalidReason::IssuedInFuture);
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if rules.issuers.is_empty() || rules.issuers.iter().any(|i| i == iss) => {}
        Some(Value::String(_)) => return Err(InvalidReason::WrongIssuer),
        None if rules.issuers.is_empty() => {}
        // Configured but missing, or of the wrong type (a number, an array…).
        _ if !rules.issuers.is_empty() => return Err(InvalidReason::WrongIssuer),
        _ => return Err(InvalidReason::InvalidClaims),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.as_str()),
                    _ if rules.audiences.is_empty() => return Err(InvalidReason::InvalidClaims),
                    _ => return Err(InvalidReason::WrongAudience),
                }
            }
            out
        }
        Some(_) if rules.audiences.is_empty() => return Err(InvalidReason::InvalidClaims),
        Some(_) => return Err(InvalidReason::WrongAudience),
    };
    if !rules.audiences.is_empty() && !audiences.iter().any(|a| rules.audiences.iter().any(|c| c == a)) {
        return Err(InvalidReason::WrongAudience);
    }
    optional_string(claims, "jti")?;
    Ok(exp)
}

/// Validates a session token's claims (Clerk semantics) and maps them.
pub(crate) fn session(claims: Map<String, Value>, rules: &ClaimRules, clock: Clock) -> Result<AuthInfo, InvalidReason> {
    let exp = check_common(&claims, rules, clock)?;
    let sub = required_string(&claims, "sub")?;
    if sub.starts_with(MACHINE_SUBJECT_PREFIX) {
        // A machine's token presented as a session.
        return Err(InvalidReason::WrongType);
    }
    let sid = optional_string(&claims, "sid")?.filter(|sid| !sid.is_empty());
    if sid.is_none() && rules.require_sid {
        return Err(InvalidReason::MissingSessionId);
    }
    let azp = optional_string(&claims, "azp")?;
    if !rules.authorized_parties.is_empty() {
        match azp {
            Some(azp) if rules.authorized_parties.iter().any(|p| p == azp) => {}
            _ => return Err(InvalidReason::WrongAuthorizedParty),
        }
    }
    let status = optional_string(&claims, "sts")?;
    // Clerk's SDK treats a pending session (a task such as choosing an organization is
    // unfinished) as signed out unless told otherwise, and only that status: `=== 'pending'`,
    // exact and case-sensitive; any other string (`active`, none) is signed in.
    if status == Some(PENDING) && !rules.accept_pending {
        return Err(InvalidReason::Inactive);
    }
    let mut info = AuthInfo::new(TokenType::SessionToken);
    // One string for both: `ArcStr` clones share it.
    let sub = arcstr::ArcStr::from(sub);
    info.user_id = Some(sub.clone());
    info.subject = Some(sub);
    info.session_id = sid.map(Into::into);
    info.session_status = status.map(Into::into);
    info.id = optional_string(&claims, "jti")?.map(Into::into);
    info.expiration = Some(exp);
    organization(&claims, &mut info)?;
    info.claims = Value::Object(claims);
    Ok(info)
}

/// An absent claim, or an array of strings.
pub(super) fn string_list(value: Option<&Value>) -> Result<Vec<String>, InvalidReason> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(InvalidReason::InvalidClaims))
            .collect(),
        Some(_) => Err(InvalidReason::InvalidClaims),
    }
}

/// Validates an OAuth JWT access token's claims (RFC 9068) and maps them.
pub(crate) fn oauth(claims: Map<String, Value>, rules: &ClaimRules, clock: Clock) -> Result<AuthInfo, InvalidReason> {
    let exp = check_common(&claims, rules, clock)?;
    let sub = required_string(&claims, "sub")?;
    let client_id = required_string(&claims, "client_id")?;
    let jti = required_string(&claims, "jti")?;
    if !matches!(claims.get("iat"), Some(v) if numeric_date(v).is_some()) {
        return Err(InvalidReason::InvalidClaims);
    }
    // RFC 9068 §2.2.1 / RFC 9470: kept in `claims` for `#[require_acr]`, so of their types.
    optional_string(&claims, "acr")?;
    if claims.get("auth_time").is_some_and(|t| numeric_date(t).is_none()) {
        return Err(InvalidReason::InvalidClaims);
    }
    let mut info = AuthInfo::new(TokenType::OAuthToken);
    info.subject = Some(sub.into());
    info.client_id = Some(client_id.into());
    info.id = Some(jti.into());
    info.expiration = Some(exp);
    info.scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => split_scopes(scope),
        (Some(_), _) => return Err(InvalidReason::InvalidClaims),
        (None, scp @ Some(_)) => string_list(scp)?,
        (None, None) => Vec::new(),
    };
    info.claims = Value::Object(claims);
    Ok(info.with_derived_ids())
}

/// Validates a Clerk M2M JWT's claims and maps them.
pub(crate) fn m2m(claims: Map<String, Value>, rules: &ClaimRules, clock: Clock) -> Result<AuthInfo, InvalidReason> {
    let exp = check_common(&claims, rules, clock)?;
    let sub = required_string(&claims, "sub")?;
    if !sub.starts_with(MACHINE_SUBJECT_PREFIX) {
        return Err(InvalidReason::WrongType);
    }
    let mut info = AuthInfo::new(TokenType::M2mToken);
    info.subject = Some(sub.into());
    info.id = optional_string(&claims, "jti")?.map(Into::into);
    info.expiration = Some(exp);
    // Clerk's `M2MToken.fromJwtPayload`: `scopes` split on spaces, else `aud` (the machines
    // the token may call; `check_common` has checked it is a string or strings).
    info.scopes = match claims.get("scopes") {
        Some(Value::String(scopes)) => split_scopes(scopes),
        Some(list @ Value::Array(_)) => string_list(Some(list))?,
        Some(_) => return Err(InvalidReason::InvalidClaims),
        None => match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(list @ Value::Array(_)) => string_list(Some(list))?,
            _ => Vec::new(),
        },
    };
    if let Some(machine) = &rules.machine
        && !info.scopes.iter().any(|s| s == machine)
    {
        return Err(InvalidReason::WrongAudience);
    }
    info.claims = Value::Object(claims);
    Ok(info.with_derived_ids())
}

/// The session status Clerk treats as signed out.
const PENDING: &str = "pending";

/// The scope tokens of a scope string: separated by the space character (RFC 6749 §3.3,
/// `scope-token *( SP scope-token )`), never by tabs or other white space; empty tokens from
/// doubled spaces are dropped.
pub(crate) fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000;
    const CLOCK: Clock = Clock { now: NOW, leeway: 5 };

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test claims are objects"),
        }
    }

    fn session_of(v: Value) -> Result<AuthInfo, InvalidReason> {
        session(map(v), &ClaimRules::default(), CLOCK)
    }

    #[test]
    fn strict_parsing_rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"b":{"c":1}}"#).is_ok());
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(InvalidReason::Malformed));
        assert_eq!(
            parse_object(br#"{"o":{"id":"1","id":"2"}}"#),
            Err(InvalidReason::Malformed)
        );
        assert_eq!(parse_object(br#"[1]"#), Err(InvalidReason::Malformed));
        assert_eq!(parse_object(br#"{"a":1} x"#), Err(InvalidReason::Malformed));
    }

    #[test]
    fn time_claims() {
        let ok = json!({"sub":"user_1","exp":NOW + 60});
        assert!(session_of(ok).is_ok());
        assert_eq!(session_of(json!({"sub":"user_1"})), Err(InvalidReason::InvalidClaims));
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":"9999999999"})),
            Err(InvalidReason::InvalidClaims)
        );
        assert!(
            session_of(json!({"sub":"user_1","exp":NOW - 4})).is_ok(),
            "within leeway"
        );
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":NOW - 5})),
            Err(InvalidReason::Expired)
        );
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":NOW + 60,"nbf":NOW + 6})),
            Err(InvalidReason::NotYetValid)
        );
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":NOW + 60,"iat":NOW + 6})),
            Err(InvalidReason::IssuedInFuture)
        );
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":NOW + 60,"iat":"0"})),
            Err(InvalidReason::InvalidClaims)
        );
        assert!(session_of(json!({"sub":"user_1","exp":(NOW + 60) as f64 + 0.5})).is_ok());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let rules = ClaimRules {
            issuers: vec!["https://issuer".into()],
            audiences: vec!["api".into()],
            ..ClaimRules::default()
        };
        let check = |v: Value| session(map(v), &rules, CLOCK).map(|_| ());
        let base = |iss: Value, aud: Value| {
            let mut m = map(json!({"sub":"user_1","exp":NOW + 60}));
            if !iss.is_null() {
                m.insert("iss".into(), iss);
            }
            if !aud.is_null() {
                m.insert("aud".into(), aud);
            }
            Value::Object(m)
        };
        assert_eq!(check(base(json!("https://issuer"), json!("api"))), Ok(()));
        assert_eq!(check(base(json!("https://issuer"), json!(["x", "api"]))), Ok(()));
        assert_eq!(check(base(json!(5), json!("api"))), Err(InvalidReason::WrongIssuer));
        assert_eq!(
            check(base(json!(["https://issuer"]), json!("api"))),
            Err(InvalidReason::WrongIssuer)
        );
        assert_eq!(check(base(Value::Null, json!("api"))), Err(InvalidReason::WrongIssuer));
        assert_eq!(
            check(base(json!("https://issuer"), Value::Null)),
            Err(InvalidReason::WrongAudience)
        );
        assert_eq!(
            check(base(json!("https://issuer"), json!(["x"]))),
            Err(InvalidReason::WrongAudience)
        );
        assert_eq!(
            check(base(json!("https://issuer"), json!(7))),
            Err(InvalidReason::WrongAudience)
        );
        // Not configured: present claims are type-checked, not matched.
        assert!(session_of(json!({"sub":"user_1","exp":NOW + 60,"iss":"any","aud":"any"})).is_ok());
        assert_eq!(
            session_of(json!({"sub":"user_1","exp":NOW + 60,"iss":5})),
            Err(InvalidReason::InvalidClaims)
        );
    }

    #[test]
    fn clerk_v1_session() {
        let info = session_of(json!({
            "sub":"user_1","exp":NOW + 60,"sid":"sess_1","sts":"active","azp":"https://app",
            "org_id":"org_1","org_role":"org:admin","org_slug":"acme",
            "org_permissions":["org:invoices:create"],"act":{"sub":"user_admin"},"fva":[1,-1]
        }))
        .unwrap();
        assert_eq!(info.user_id.as_deref(), Some("user_1"));
        assert_eq!(info.session_id.as_deref(), Some("sess_1"));
        assert_eq!(info.session_status.as_deref(), Some("active"));
        assert_eq!(info.org_id.as_deref(), Some("org_1"));
        assert_eq!(info.org_role.as_deref(), Some("org:admin"));
        assert_eq!(info.org_slug.as_deref(), Some("acme"));
        assert_eq!(info.org_permissions, ["org:invoices:create"]);
        assert_eq!(info.claims["act"]["sub"], "user_admin");
        assert_eq!(info.claims["fva"], json!([1, -1]));
        assert_eq!(info.expiration, Some(NOW + 60));
    }

    #[test]
    fn clerk_v2_session() {
        let info = session_of(json!({
            "v":2,"sub":"user_1","exp":NOW + 60,"sid":"sess_1","fea":"o:invoices,o:reports,u:profile",
            "o":{"id":"org_1","rol":"admin","slg":"acme","per":"read,create,delete","fpm":"7,1"}
        }))
        .unwrap();
        assert_eq!(info.org_id.as_deref(), Some("org_1"));
        assert_eq!(info.org_role.as_deref(), Some("org:admin"));
        assert_eq!(info.org_slug.as_deref(), Some("acme"));
        assert_eq!(
            info.org_permissions,
            [
                "org:invoices:read",
                "org:invoices:create",
                "org:invoices:delete",
                "org:reports:read"
            ]
        );
        let no_org = session_of(json!({"v":2,"sub":"user_1","exp":NOW + 60})).unwrap();
        assert_eq!(no_org.org_id, None);
        assert!(no_org.org_permissions.is_empty());
    }

    #[test]
    fn authorized_parties_required_when_set() {
        let rules = ClaimRules {
            authorized_parties: vec!["https://app.example".into()],
            ..ClaimRules::default()
        };
        let check = |v: Value| session(map(v), &rules, CLOCK).map(|_| ());
        assert_eq!(
            check(json!({"sub":"user_1","exp":NOW + 60,"azp":"https://app.example"})),
            Ok(())
        );
        assert_eq!(
            check(json!({"sub":"user_1","exp":NOW + 60,"azp":"https://evil.example"})),
            Err(InvalidReason::WrongAuthorizedParty)
        );
        assert_eq!(
            check(json!({"sub":"user_1","exp":NOW + 60})),
            Err(InvalidReason::WrongAuthorizedParty)
        );
    }

    #[test]
    fn sessions_need_a_sid_unless_allowed() {
        let rules = ClaimRules {
            require_sid: true,
            ..ClaimRules::default()
        };
        let check = |v: Value| session(map(v), &rules, CLOCK).map(|i| i.session_id);
        assert_eq!(
            check(json!({"sub":"user_1","exp":NOW + 60,"sid":"sess_1"})),
            Ok(Some("sess_1".into()))
        );
        for missing in [json!({}), json!({"sid":null}), json!({"sid":""})] {
            let mut claims = map(json!({"sub":"user_1","exp":NOW + 60}));
            claims.extend(map(missing.clone()));
            assert_eq!(
                check(Value::Object(claims)),
                Err(InvalidReason::MissingSessionId),
                "{missing}"
            );
        }
        let lenient = session_of(json!({"sub":"user_1","exp":NOW + 60})).unwrap();
        assert_eq!(lenient.session_id, None);
    }

    #[test]
    fn scopes_split_on_the_space_character_only() {
        assert_eq!(split_scopes("read write:users"), ["read", "write:users"]);
        assert_eq!(split_scopes(" read  write "), ["read", "write"]);
        assert_eq!(split_scopes("read\twrite:users"), ["read\twrite:users"]);
        assert_eq!(split_scopes("read\nwrite:users"), ["read\nwrite:users"]);
        assert_eq!(split_scopes("read\u{a0}write:users"), ["read\u{a0}write:users"]);
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn pending_sessions_are_signed_out_unless_accepted() {
        let pending = json!({"sub":"user_1","exp":NOW + 60,"sts":"pending"});
        assert_eq!(session_of(pending.clone()), Err(InvalidReason::Inactive));
        let rules = ClaimRules {
            accept_pending: true,
            ..ClaimRules::default()
        };
        let info = session(map(pending), &rules, CLOCK).unwrap();
        assert_eq!(info.session_status.as_deref(), Some("pending"));
    }

    #[test]
    fn oauth_claims() {
        let rules = ClaimRules::default();
        let full = json!({"sub":"user_1","exp":NOW + 60,"iat":NOW,"jti":"j1","client_id":"c1","scope":"read write"});
        let info = oauth(map(full.clone()), &rules, CLOCK).unwrap();
        assert_eq!(info.scopes, ["read", "write"]);
        assert_eq!(info.client_id.as_deref(), Some("c1"));
        assert_eq!(info.user_id.as_deref(), Some("user_1"));
        let scp = json!({"sub":"user_1","exp":NOW + 60,"iat":NOW,"jti":"j1","client_id":"c1","scp":["a","b"]});
        assert_eq!(oauth(map(scp), &rules, CLOCK).unwrap().scopes, ["a", "b"]);
        for missing in ["sub", "client_id", "jti", "iat"] {
            let mut m = map(full.clone());
            m.remove(missing);
            assert_eq!(
                oauth(m, &rules, CLOCK).unwrap_err(),
                InvalidReason::InvalidClaims,
                "{missing}"
            );
        }
    }

    #[test]
    fn oauth_keeps_acr_and_auth_time_of_their_types() {
        let rules = ClaimRules::default();
        let base = json!({"sub":"user_1","exp":NOW + 60,"iat":NOW,"jti":"j1","client_id":"c1"});
        let mut good = map(base.clone());
        good.extend(map(json!({"acr":"mfa","auth_time":NOW - 5})));
        let info = oauth(good, &rules, CLOCK).unwrap();
        assert_eq!(
            (info.claims["acr"].as_str(), info.claims["auth_time"].as_i64()),
            (Some("mfa"), Some(NOW - 5))
        );
        for bad in [
            json!({"acr":["mfa"]}),
            json!({"acr":1}),
            json!({"auth_time":"1"}),
            json!({"auth_time":true}),
        ] {
            let mut m = map(base.clone());
            m.extend(map(bad.clone()));
            assert_eq!(
                oauth(m, &rules, CLOCK).unwrap_err(),
                InvalidReason::InvalidClaims,
                "{bad}"
            );
        }
    }

    #[test]
    fn clerk_v2_malformed_claims_as_clerks_parser_reads_them() {
        let with = |extra: Value| {
            let mut m = map(json!({"v":2,"sub":"user_1","exp":NOW + 60,"sid":"s"}));
            m.extend(map(extra));
            session(m, &ClaimRules::default(), CLOCK)
        };
        // Where Clerk's parser throws, the session is refused.
        for thrown in [
            json!({"o":{"id":"org_1"},"fea":"o:a,broken"}),
            json!({"o":{"id":"org_1"},"fea":5}),
            json!({"o":{"id":"org_1","per":["read"],"fpm":"1"},"fea":"o:a"}),
            json!({"o":{"id":"org_1","per":"read","fpm":1},"fea":"o:a"}),
        ] {
            assert_eq!(
                with(thrown.clone()).unwrap_err(),
                InvalidReason::InvalidClaims,
                "{thrown}"
            );
        }
        // Clerk reads `per` and `fpm` only when both are there.
        for read_not in [
            json!({"o":{"id":"org_1","per":["read"],"fpm":""}}),
            json!({"o":{"id":"org_1","fpm":7}}),
        ] {
            assert!(with(read_not.clone()).unwrap().org_permissions.is_empty(), "{read_not}");
        }
        let thrown = json!({"o":{"id":"org_1"},"fea":true});
        assert_eq!(with(thrown).unwrap_err(), InvalidReason::InvalidClaims);
        // Without an organization, `fea` is read only by the billing checks.
        assert!(with(json!({"fea":"broken"})).is_ok());
        // Falsy values are none; an `o` that is not an object names no organization.
        let info = with(json!({"o":{"id":"org_1","rol":"","per":0,"fpm":"1"},"fea":false})).unwrap();
        assert_eq!(
            (info.org_id.as_deref(), info.org_role.as_deref()),
            (Some("org_1"), None)
        );
        assert_eq!(with(json!({"o":"org_1"})).unwrap().org_id, None);
        // `ou:` is the organization's; `xo:` is nobody's; an empty feature keeps its mask.
        let info = with(json!({"o":{"id":"org_1","per":"read","fpm":"1,1,1"},"fea":"o:,xo:b,ou:c"})).unwrap();
        assert_eq!(info.org_permissions, ["org::read", "org:c:read"]);
    }

    #[test]
    fn m2m_claims() {
        let rules = ClaimRules::default();
        let info = m2m(
            map(json!({"sub":"mch_1","exp":NOW + 60,"jti":"mt_1","scopes":"mch_2 mch_3"})),
            &rules,
            CLOCK,
        )
        .unwrap();
        assert_eq!(info.machine_id.as_deref(), Some("mch_1"));
        assert_eq!(info.scopes, ["mch_2", "mch_3"]);
        assert_eq!(info.id.as_deref(), Some("mt_1"));
        assert_eq!(
            m2m(map(json!({"sub":"user_1","exp":NOW + 60})), &rules, CLOCK).unwrap_err(),
            InvalidReason::WrongType
        );
        assert_eq!(
            session(map(json!({"sub":"mch_1","exp":NOW + 60})), &rules, CLOCK).unwrap_err(),
            InvalidReason::WrongType
        );
    }
}
