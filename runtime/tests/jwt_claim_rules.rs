//! What makes a JWT a session, a machine's token or a grant of scopes, attacked with real
//! signatures: `sid` required of sessions, session and M2M issuers, the machine an M2M JWT
//! must list, scopes split on the space character only (JWTs and introspection), `sts`
//! compared as Clerk compares it, and the comparison with what Clerk's SDK accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jwt_support;

use std::sync::Arc;

use http::{HeaderMap, header};
use jwt_support::{CLERK_ISSUER, RSA, jwks, m2m_claims, now, session_claims};
use serde_json::{Value, json};
use tokengate_runtime::jwt::category::{IGNORE, JWT_TEMPLATE, M2M_TOKEN, SESSION_TOKEN};
use tokengate_runtime::jwt::{JwtConfigError, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::{Credential, Verifier, VerifyError};
use tokengate_runtime::{
    IntrospectionVerifier, Match, Policy, Rejection, Requirement, RequirementKind, TokenGate, TokenType, TokenTypes,
};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";

fn keys() -> KeySet {
    KeySet::from_jwks(&jwks(&[RSA.jwk(Some("RS256"))]).to_string()).unwrap()
}

fn sessions(rules: SessionRules) -> JwtVerifier {
    JwtVerifier::builder().keys(keys()).session(rules).build().unwrap()
}

fn machines(rules: M2mRules) -> Result<JwtVerifier, JwtConfigError> {
    JwtVerifier::builder().keys(keys()).m2m(rules).build()
}

async fn verdict(v: &JwtVerifier, token: &str, token_type: TokenType) -> Result<(), InvalidReason> {
    match v.verify_token(token, token_type).await {
        Ok(_) => Ok(()),
        Err(VerifyError::Invalid(reason)) => Err(reason),
        Err(other) => panic!("expected a verdict, got {other:?}"),
    }
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    headers
}

/// An OpenID Connect ID token from an authorization server that shares the key set: a
/// user's subject, an audience, no `sid`.
fn id_token_claims() -> Value {
    let now = now();
    json!({"iss":"https://idp.example.com","aud":"client_web","sub":"user_123","email":"a@example.com",
           "nonce":"n-1","iat":now,"exp":now + 300,"auth_time":now - 5})
}

#[tokio::test]
async fn a_session_token_needs_a_sid_unless_missing_ones_are_allowed() {
    let strict = sessions(SessionRules::new());
    let session = RSA.token(&session_claims());
    assert_eq!(verdict(&strict, &session, TokenType::SessionToken).await, Ok(()));
    for (name, claims) in [
        ("an ID token", id_token_claims()),
        ("a session without sid", with(session_claims(), json!({"sid": null}))),
        ("an empty sid", with(session_claims(), json!({"sid": ""}))),
    ] {
        let token = RSA.token(&claims);
        assert_eq!(
            verdict(&strict, &token, TokenType::SessionToken).await,
            Err(InvalidReason::MissingSessionId),
            "{name}"
        );
    }
    let wrong_type = RSA.token(&with(session_claims(), json!({"sid": 5})));
    assert_eq!(
        verdict(&strict, &wrong_type, TokenType::SessionToken).await,
        Err(InvalidReason::InvalidClaims)
    );
    // On the wire: a 401 with its own reason.
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::new(strict))
        .build()
        .unwrap();
    let refused = gate
        .authorize(
            &bearer(&RSA.token(&id_token_claims())),
            &http::Extensions::new(),
            &Policy::accepting(TokenTypes::DEFAULT),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status().as_u16(), refused.reason()),
        (401, "missing-session-id")
    );
    // Allowed: the token is a session without a session id.
    let lenient = sessions(SessionRules::new().allow_missing_sid());
    let auth = lenient
        .verify_token(&RSA.token(&id_token_claims()), TokenType::SessionToken)
        .await
        .unwrap();
    assert_eq!(
        (auth.user_id.as_deref(), auth.session_id.as_deref()),
        (Some("user_123"), None)
    );
}

#[tokio::test]
async fn a_session_issuer_is_compared_exactly_and_required_once_named() {
    let v = sessions(SessionRules::new().issuer(CLERK_ISSUER));
    assert_eq!(
        verdict(&v, &RSA.token(&session_claims()), TokenType::SessionToken).await,
        Ok(())
    );
    for iss in [
        json!("https://clerk.other.example"),
        json!("https://clerk.example.com/"),
        json!("HTTPS://CLERK.EXAMPLE.COM"),
        json!(null),
        json!([CLERK_ISSUER]),
    ] {
        let token = RSA.token(&with(session_claims(), json!({ "iss": iss.clone() })));
        assert_eq!(
            verdict(&v, &token, TokenType::SessionToken).await,
            Err(InvalidReason::WrongIssuer),
            "iss {iss}"
        );
    }
    // `issuer` adds; `issuers` replaces.
    let two = sessions(
        SessionRules::new()
            .issuer(CLERK_ISSUER)
            .issuer("https://clerk.b.example"),
    );
    let b = RSA.token(&with(session_claims(), json!({"iss": "https://clerk.b.example"})));
    assert_eq!(verdict(&two, &b, TokenType::SessionToken).await, Ok(()));
    let replaced = sessions(
        SessionRules::new()
            .issuer(CLERK_ISSUER)
            .issuers(["https://clerk.b.example"]),
    );
    let a = RSA.token(&session_claims());
    assert_eq!(
        verdict(&replaced, &a, TokenType::SessionToken).await,
        Err(InvalidReason::WrongIssuer)
    );
    let blank = JwtVerifier::builder()
        .keys(keys())
        .session(SessionRules::new().issuer(" "))
        .build()
        .unwrap_err();
    assert_eq!(blank, JwtConfigError::Empty("a session issuer"));
}

#[tokio::test]
async fn m2m_rules_need_an_issuer_or_say_to_skip_it() {
    let missing = machines(M2mRules::new()).unwrap_err();
    assert_eq!(missing, JwtConfigError::M2mIssuerRequired);
    let message = missing.to_string();
    assert!(
        message.contains(".issuer(") && message.contains("skip_issuer_check()"),
        "{message}"
    );
    let both = machines(M2mRules::new().issuer(CLERK_ISSUER).skip_issuer_check()).unwrap_err();
    assert!(both.to_string().contains("keep one of them"), "{both}");

    let named = machines(M2mRules::new().issuer(CLERK_ISSUER)).unwrap();
    assert_eq!(
        verdict(&named, &RSA.token(&m2m_claims()), TokenType::M2mToken).await,
        Ok(())
    );
    for iss in [json!("https://clerk.other.example"), json!(null), json!(5)] {
        let token = RSA.token(&with(m2m_claims(), json!({ "iss": iss.clone() })));
        assert_eq!(
            verdict(&named, &token, TokenType::M2mToken).await,
            Err(InvalidReason::WrongIssuer),
            "iss {iss}"
        );
    }
    let skipped = machines(M2mRules::new().skip_issuer_check()).unwrap();
    for iss in [json!("https://clerk.other.example"), json!(null)] {
        let token = RSA.token(&with(m2m_claims(), json!({ "iss": iss.clone() })));
        assert_eq!(
            verdict(&skipped, &token, TokenType::M2mToken).await,
            Ok(()),
            "iss {iss}"
        );
    }
}

#[tokio::test]
async fn an_m2m_jwt_must_list_the_machine_that_requires_itself() {
    let me = |rules: M2mRules| machines(rules.issuer(CLERK_ISSUER)).unwrap();
    let v = me(M2mRules::new().require_machine("mch_2"));
    let ok = |claims: Value| RSA.token(&claims);
    // Clerk's reading (M2MToken.fromJwtPayload): `scopes`, or `aud` when it is absent.
    let cases = [
        ("listed in scopes", m2m_claims(), Ok(())),
        (
            "listed in aud, no scopes",
            with(m2m_claims(), json!({"scopes": null})),
            Ok(()),
        ),
        (
            "aud a single string",
            with(m2m_claims(), json!({"scopes": null, "aud": "mch_2"})),
            Ok(()),
        ),
        (
            "scopes win over aud",
            with(m2m_claims(), json!({"scopes": "mch_3", "aud": ["mch_2"]})),
            Err(InvalidReason::WrongAudience),
        ),
        (
            "another machine only",
            with(m2m_claims(), json!({"scopes": "mch_3", "aud": null})),
            Err(InvalidReason::WrongAudience),
        ),
        (
            "no scopes nor aud",
            with(m2m_claims(), json!({"scopes": null, "aud": null})),
            Err(InvalidReason::WrongAudience),
        ),
        (
            "a tab is no separator",
            with(m2m_claims(), json!({"scopes": "mch_3\tmch_2"})),
            Err(InvalidReason::WrongAudience),
        ),
        (
            "a prefix is not the machine",
            with(m2m_claims(), json!({"scopes": "mch_22 mch_2x"})),
            Err(InvalidReason::WrongAudience),
        ),
    ];
    for (name, claims, expected) in cases {
        assert_eq!(verdict(&v, &ok(claims), TokenType::M2mToken).await, expected, "{name}");
    }
    // Without the requirement the scopes are the token's, read the same way.
    let any = me(M2mRules::new());
    let auth = any
        .verify_token(&ok(with(m2m_claims(), json!({"scopes": null}))), TokenType::M2mToken)
        .await
        .unwrap();
    assert_eq!(auth.scopes, ["mch_2", "mch_3"]);
    let bad = machines(M2mRules::new().skip_issuer_check().require_machine("billing")).unwrap_err();
    assert!(bad.to_string().contains("mch_"), "{bad}");
}

/// A gate whose one route needs `write:users`, over this verifier for these types.
fn write_users_route(types: TokenTypes, verifier: Arc<dyn Verifier>) -> (TokenGate, Policy) {
    let gate = TokenGate::builder().verifier_for(types, verifier).build().unwrap();
    let needs = Requirement::new(RequirementKind::Scope, Match::All, ["write:users"]).unwrap();
    (gate, Policy::accepting(types).require(needs))
}

async fn write_users(gate: &TokenGate, policy: &Policy, token: &str) -> Result<(), &'static str> {
    gate.authorize(&bearer(token), &http::Extensions::new(), policy)
        .await
        .map(|_| ())
        .map_err(|r: Rejection| r.reason())
}

#[tokio::test]
async fn scopes_are_split_on_the_space_character_only() {
    let oauth = Arc::new(
        JwtVerifier::builder()
            .keys(keys())
            .oauth(OAuthRules::new(ISSUER, [AUDIENCE]))
            .m2m(M2mRules::new().issuer(CLERK_ISSUER))
            .build()
            .unwrap(),
    );
    let types = TokenTypes::EMPTY.with(TokenType::OAuthToken).with(TokenType::M2mToken);
    let (gate, policy) = write_users_route(types, oauth);
    let now = now();
    let access = |scope: &str| {
        RSA.token_with_header(
            &json!({"alg":"RS256","typ":"at+jwt","kid":RSA.kid}),
            &json!({"iss":ISSUER,"aud":AUDIENCE,"sub":"user_1","client_id":"c","iat":now,"exp":now + 60,
                    "jti":format!("at-{scope}"),"scope":scope}),
        )
    };
    let machine = |scopes: &str| RSA.token(&with(m2m_claims(), json!({ "scopes": scopes })));
    assert_eq!(write_users(&gate, &policy, &access("read write:users")).await, Ok(()));
    assert_eq!(write_users(&gate, &policy, &machine("read write:users")).await, Ok(()));
    for separator in ["\t", "\n", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{3000}", ","] {
        let scope = format!("read{separator}write:users");
        assert_eq!(
            write_users(&gate, &policy, &access(&scope)).await,
            Err("insufficient-scope"),
            "OAuth scope {scope:?}"
        );
        assert_eq!(
            write_users(&gate, &policy, &machine(&scope)).await,
            Err("insufficient-scope"),
            "M2M scopes {scope:?}"
        );
    }
}

/// An RFC 7662 endpoint on loopback that calls every token active with `scope`'s value.
async fn introspection_endpoint(scope: &'static str) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/introspect",
        post(move || async move {
            axum::Json(json!({"active":true,"scope":scope,"sub":"user_1","client_id":"c","exp":now() + 600}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

#[tokio::test]
async fn introspected_scopes_are_split_on_the_space_character_only() {
    use tokengate_runtime::introspection::IntrospectionConfig;
    for (scope, expected) in [
        ("read write:users", &["read", "write:users"][..]),
        ("read\twrite:users", &["read\twrite:users"][..]),
        ("read\nwrite:users", &["read\nwrite:users"][..]),
    ] {
        let url = introspection_endpoint(scope).await;
        let verifier = IntrospectionVerifier::new(IntrospectionConfig::new(url, "id", "secret")).unwrap();
        let auth = verifier
            .verify(Credential::new_for_tests("opaque-1", TokenType::OAuthToken))
            .await
            .unwrap();
        assert_eq!(auth.scopes, expected, "{scope:?}");
    }
}

#[tokio::test]
async fn sts_is_compared_as_clerk_compares_it() {
    // Clerk: `sessionStatus === 'pending'` (with treatPendingAsSignedOut, the default) signs
    // out; any other value signs in. tokengate refuses a non-string status besides.
    let strict = sessions(SessionRules::new());
    let lenient = sessions(SessionRules::new().accept_pending_sessions(true));
    let cases = [
        (json!(null), Ok(()), Ok(())),
        (json!("active"), Ok(()), Ok(())),
        (json!("pending"), Err(InvalidReason::Inactive), Ok(())),
        (json!("Pending"), Ok(()), Ok(())),
        (json!("PENDING"), Ok(()), Ok(())),
        (json!(" pending"), Ok(()), Ok(())),
        (json!("pending "), Ok(()), Ok(())),
        (
            json!(5),
            Err(InvalidReason::InvalidClaims),
            Err(InvalidReason::InvalidClaims),
        ),
        (
            json!(["pending"]),
            Err(InvalidReason::InvalidClaims),
            Err(InvalidReason::InvalidClaims),
        ),
    ];
    for (sts, by_default, accepting_pending) in cases {
        let token = RSA.token(&with(session_claims(), json!({ "sts": sts.clone() })));
        assert_eq!(
            verdict(&strict, &token, TokenType::SessionToken).await,
            by_default,
            "sts {sts}"
        );
        assert_eq!(
            verdict(&lenient, &token, TokenType::SessionToken).await,
            accepting_pending,
            "sts {sts}, pending accepted"
        );
    }
}

/// What Clerk's `authenticateRequest` (`@clerk/backend` 3.16.10, a token in the
/// `Authorization` header, `acceptsToken: 'session_token'`, no `audience`) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clerk {
    SignedIn,
    /// Signed out, with Clerk's reason (`AuthErrorReason`, or how it comes about).
    SignedOut(&'static str),
}

/// One row of the comparison: a token, Clerk's answer, tokengate's (`SessionRules::new()`),
/// and, where they differ, why.
struct Case {
    name: &'static str,
    typ: &'static str,
    cat: Option<&'static str>,
    claims: Value,
    clerk: Clerk,
    tokengate: Result<(), &'static str>,
    differs_because: &'static str,
}

impl Case {
    fn new(
        name: &'static str,
        cat: Option<&'static str>,
        claims: Value,
        clerk: Clerk,
        tokengate: Result<(), &'static str>,
    ) -> Case {
        let typ = "JWT";
        let differs_because = "";
        Case {
            name,
            typ,
            cat,
            claims,
            clerk,
            tokengate,
            differs_because,
        }
    }

    fn typ(self, typ: &'static str) -> Case {
        Case { typ, ..self }
    }

    fn because(self, differs_because: &'static str) -> Case {
        Case {
            differs_because,
            ..self
        }
    }
}

/// The tokens on which tokengate and Clerk's SDK agree.
fn agreeing() -> Vec<Case> {
    use Clerk::{SignedIn, SignedOut};
    let no_sid = with(session_claims(), json!({"sid": null}));
    let mismatch = SignedOut("token-type-mismatch");
    vec![
        Case::new("Clerk session", Some(SESSION_TOKEN), session_claims(), SignedIn, Ok(())),
        Case::new(
            "session from before the cat rollout",
            None,
            session_claims(),
            SignedIn,
            Ok(()),
        ),
        Case::new(
            "session of an instance stamping ignore",
            Some(IGNORE),
            session_claims(),
            SignedIn,
            Ok(()),
        ),
        Case::new(
            "JWT template",
            Some(JWT_TEMPLATE),
            no_sid,
            mismatch,
            Err("token-category-mismatch"),
        ),
        Case::new(
            "unknown category",
            Some("cl_x"),
            session_claims(),
            mismatch,
            Err("token-category-mismatch"),
        ),
        Case::new(
            "M2M category, a user's claims",
            Some(M2M_TOKEN),
            session_claims(),
            mismatch,
            Err("token-type-ambiguous"),
        ),
        Case::new(
            "machine subject",
            None,
            with(session_claims(), json!({"sub": "mch_1"})),
            mismatch,
            Err("token-type-mismatch"),
        ),
        Case::new(
            "OAuth access token",
            None,
            session_claims(),
            mismatch,
            Err("token-type-mismatch"),
        )
        .typ("at+jwt"),
        Case::new(
            "pending session",
            None,
            with(session_claims(), json!({"sts": "pending"})),
            SignedOut("pending: toAuth() treats it as signed out"),
            Err("token-inactive"),
        ),
        Case::new(
            "another instance's issuer, none configured",
            None,
            with(session_claims(), json!({"iss": "https://clerk.other.example"})),
            SignedIn,
            Ok(()),
        ),
    ]
}

/// The tokens Clerk's SDK signs in and tokengate refuses, each with its reason.
fn differing() -> Vec<Case> {
    use Clerk::SignedIn;
    let no_sid = with(session_claims(), json!({"sid": null}));
    vec![
        Case::new(
            "JWT template from before the cat rollout",
            None,
            no_sid,
            SignedIn,
            Err("missing-session-id"),
        )
        .because("Clerk requires no sid; tokengate does, so a JWT that names no session is none"),
        Case::new(
            "ID token of a server sharing the keys",
            None,
            id_token_claims(),
            SignedIn,
            Err("missing-session-id"),
        )
        .because("the same: without sid an ID or access token would pass as the user's session"),
        Case::new(
            "sts that is not a string",
            None,
            with(session_claims(), json!({"sts": 5})),
            SignedIn,
            Err("invalid-claims"),
        )
        .because("Clerk only compares it with 'pending'; tokengate refuses a claim of the wrong type"),
    ]
}

#[tokio::test]
async fn sessions_tokengate_and_clerks_sdk_accept() {
    let v = Arc::new(sessions(SessionRules::new()));
    let gate = TokenGate::builder().verifier_for(v.token_types(), v).build().unwrap();
    let sessions_only = Policy::accepting(TokenTypes::DEFAULT);
    for case in agreeing().into_iter().chain(differing()) {
        let mut header = json!({"alg":"RS256","typ":case.typ,"kid":RSA.kid});
        if let Some(cat) = case.cat {
            header["cat"] = json!(cat);
        }
        let token = RSA.token_with_header(&header, &case.claims);
        let got = gate
            .authorize(&bearer(&token), &http::Extensions::new(), &sessions_only)
            .await
            .map(|_| ())
            .map_err(|r| r.reason());
        assert_eq!(got, case.tokengate, "{}", case.name);
        if let Clerk::SignedOut(reason) = case.clerk {
            assert!(!reason.is_empty(), "{}: name Clerk's reason", case.name);
        }
        let same_verdict = (case.clerk == Clerk::SignedIn) == got.is_ok();
        assert_eq!(
            same_verdict,
            case.differs_because.is_empty(),
            "{}: a difference from Clerk must say why, and only a difference",
            case.name
        );
    }
    // The issuer Clerk's SDK does not check: tokengate checks it once named.
    let named = sessions(SessionRules::new().issuer(CLERK_ISSUER));
    let other = RSA.token(&with(session_claims(), json!({"iss": "https://clerk.other.example"})));
    assert_eq!(
        verdict(&named, &other, TokenType::SessionToken).await,
        Err(InvalidReason::WrongIssuer)
    );
}
