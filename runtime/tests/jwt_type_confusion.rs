//! Token confusion, attacked with real signatures: Clerk's `cat` header for every category
//! in both directions (a session's rules, an M2M JWT's rules, and OAuth tokens, which Clerk
//! lets carry any), and JWTs whose signals disagree (`token-type-ambiguous`), refused before
//! any verifier and never remembered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jwt_support;

use std::sync::Arc;

use http::{HeaderMap, header};
use jwt_support::{CLERK_ISSUER, JwksServer, RSA, jwks, m2m_claims, now, session_claims};
use serde_json::{Value, json};
use tokengate_runtime::jwt::category::{IGNORE, JWT_TEMPLATE, M2M_TOKEN, SESSION_TOKEN};
use tokengate_runtime::jwt::{JwksCache, JwtVerifier, KeySet, M2mRules, OAuthRules, SessionRules};
use tokengate_runtime::rejection::InvalidReason;
use tokengate_runtime::verifier::VerifyError;
use tokengate_runtime::{Policy, Rejection, TokenGate, TokenType, TokenTypes};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";
const UNKNOWN: &str = "cl_some_future_unknown_cat";

/// Every category, named for the messages, in one order the expectations below follow.
const CATEGORIES: [(&str, Option<&str>); 6] = [
    ("absent", None),
    ("session", Some(SESSION_TOKEN)),
    ("template", Some(JWT_TEMPLATE)),
    ("m2m", Some(M2M_TOKEN)),
    ("ignore", Some(IGNORE)),
    ("unknown", Some(UNKNOWN)),
];

fn rules_verifier(session: SessionRules, m2m: M2mRules) -> JwtVerifier {
    JwtVerifier::builder()
        .keys(KeySet::from_jwks(&jwks(&[RSA.jwk(Some("RS256"))]).to_string()).unwrap())
        .session(session)
        .oauth(OAuthRules::new(ISSUER, [AUDIENCE]))
        .m2m(m2m)
        .build()
        .unwrap()
}

/// One verifier for the three kinds, as a Clerk instance signs them all with one key.
fn verifier() -> JwtVerifier {
    rules_verifier(SessionRules::new(), M2mRules::new().issuer(CLERK_ISSUER))
}

fn gate(verifier: JwtVerifier) -> TokenGate {
    TokenGate::builder()
        .verifier_for(verifier.token_types(), Arc::new(verifier))
        .build()
        .unwrap()
}

fn every_jwt_type() -> Policy {
    Policy::accepting(
        TokenTypes::DEFAULT
            .with(TokenType::M2mToken)
            .with(TokenType::OAuthToken),
    )
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    headers
}

/// What the gate answers on a route that accepts every JWT type: the type, or the reason.
async fn through_gate(gate: &TokenGate, policy: &Policy, token: &str) -> Result<TokenType, InvalidReason> {
    match gate.authorize(&bearer(token), &http::Extensions::new(), policy).await {
        Ok(auth) => Ok(auth.token_type),
        Err(Rejection::InvalidToken(reason)) => Err(reason),
        Err(other) => panic!("expected a type or an invalid token, got {other:?}"),
    }
}

async fn verified_as(v: &JwtVerifier, token: &str, token_type: TokenType) -> Result<(), InvalidReason> {
    match v.verify_token(token, token_type).await {
        Ok(auth) => {
            assert_eq!(auth.token_type, token_type);
            Ok(())
        }
        Err(VerifyError::Invalid(reason)) => Err(reason),
        Err(other) => panic!("expected a verdict, got {other:?}"),
    }
}

fn oauth_claims() -> Value {
    let now = now();
    json!({"iss":ISSUER,"aud":AUDIENCE,"sub":"user_1","client_id":"client_1","iat":now,"exp":now + 60,"jti":"at_1"})
}

/// A token signed with the real key, with this `typ` and, when given, this `cat`.
fn signed(typ: &str, cat: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg":"RS256","typ":typ,"kid":RSA.kid});
    if let Some(cat) = cat {
        header["cat"] = json!(cat);
    }
    RSA.token_with_header(&header, claims)
}

/// The kinds of claims, their `typ`, and the type they are of.
fn kinds() -> [(&'static str, &'static str, Value, TokenType); 3] {
    [
        ("session", "JWT", session_claims(), TokenType::SessionToken),
        ("m2m", "JWT", m2m_claims(), TokenType::M2mToken),
        ("oauth", "at+jwt", oauth_claims(), TokenType::OAuthToken),
    ]
}

use InvalidReason::{CategoryMismatch as Cm, TypeAmbiguous as Amb};

/// What the gate answers for one category, and what the kind's own rules answer.
type Outcome = (Result<TokenType, InvalidReason>, Result<(), InvalidReason>);

#[tokio::test]
async fn every_category_as_a_session_an_m2m_jwt_and_an_oauth_token() {
    let (s, m, o) = (TokenType::SessionToken, TokenType::M2mToken, TokenType::OAuthToken);
    // Per kind, per category (in CATEGORIES' order): what the gate answers on a route that
    // accepts every JWT type, and what the kind's own rules answer when asked directly.
    let expected: [[Outcome; 6]; 3] = [
        // Session rules (Clerk's authenticateRequest): absent, the session category and
        // "ignore" pass; a template or unknown category is another class; the M2M category
        // on a user's claims has two readings.
        [
            (Ok(s), Ok(())),
            (Ok(s), Ok(())),
            (Err(Cm), Err(Cm)),
            (Err(Amb), Err(Cm)),
            (Ok(s), Ok(())),
            (Err(Cm), Err(Cm)),
        ],
        // M2M rules (Clerk's verifyM2MJwt): absent or the M2M category only, "ignore" refused
        // too; the session category on a machine's claims has two readings.
        [
            (Ok(m), Ok(())),
            (Err(Amb), Err(Cm)),
            (Err(Cm), Err(Cm)),
            (Ok(m), Ok(())),
            (Err(Cm), Err(Cm)),
            (Err(Cm), Err(Cm)),
        ],
        // OAuth (Clerk's verifyOAuthJwt reads no `cat`): any category that names no other
        // type; the session or M2M category on an `at+jwt` has two readings.
        [
            (Ok(o), Ok(())),
            (Err(Amb), Err(Amb)),
            (Ok(o), Ok(())),
            (Err(Amb), Err(Amb)),
            (Ok(o), Ok(())),
            (Ok(o), Ok(())),
        ],
    ];
    let v = verifier();
    let g = gate(verifier());
    let all = every_jwt_type();
    for ((kind, typ, claims, token_type), row) in kinds().into_iter().zip(expected) {
        for ((name, cat), (by_gate, by_rules)) in CATEGORIES.into_iter().zip(row) {
            let token = signed(typ, cat, &claims);
            assert_eq!(
                through_gate(&g, &all, &token).await,
                by_gate,
                "{kind} claims, cat {name}, gate"
            );
            assert_eq!(
                verified_as(&v, &token, token_type).await,
                by_rules,
                "{kind} claims, cat {name}, {token_type} rules"
            );
        }
    }
}

#[tokio::test]
async fn a_category_is_refused_before_any_key_is_fetched_or_signature_checked() {
    // As Clerk's test: a JWT template sent as a session costs the JWKS server nothing.
    let server = JwksServer::start(jwks(&[RSA.jwk(Some("RS256"))])).await;
    let v = JwtVerifier::builder()
        .jwks(JwksCache::new(server.url()).unwrap())
        .session(SessionRules::new())
        .m2m(M2mRules::new().issuer(CLERK_ISSUER))
        .build()
        .unwrap();
    let template = signed("JWT", Some(JWT_TEMPLATE), &session_claims());
    let forged = format!("{}AAAA", &template[..template.rfind('.').unwrap() + 1]);
    for token in [&template, &forged] {
        assert_eq!(verified_as(&v, token, TokenType::SessionToken).await, Err(Cm));
    }
    let session_cat_machine = signed("JWT", Some(SESSION_TOKEN), &m2m_claims());
    assert_eq!(
        verified_as(&v, &session_cat_machine, TokenType::M2mToken).await,
        Err(Cm)
    );
    assert_eq!(server.hits(), 0, "no key was fetched for a token of the wrong category");
    // The same claims without the category verify (and need the key).
    verified_as(&v, &signed("JWT", None, &session_claims()), TokenType::SessionToken)
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn the_category_check_can_be_turned_off_for_an_issuer_whose_cat_means_something_else() {
    let v = rules_verifier(
        SessionRules::new().check_token_category(false),
        M2mRules::new().issuer(CLERK_ISSUER).check_token_category(false),
    );
    for cat in [JWT_TEMPLATE, IGNORE, UNKNOWN] {
        let session = signed("JWT", Some(cat), &session_claims());
        assert_eq!(
            verified_as(&v, &session, TokenType::SessionToken).await,
            Ok(()),
            "{cat}"
        );
        let machine = signed("JWT", Some(cat), &m2m_claims());
        assert_eq!(verified_as(&v, &machine, TokenType::M2mToken).await, Ok(()), "{cat}");
    }
    // Clerk's own session and M2M categories still give a class: two readings stay refused.
    let g = gate(v);
    let mixed = signed("JWT", Some(M2M_TOKEN), &session_claims());
    assert_eq!(through_gate(&g, &every_jwt_type(), &mixed).await, Err(Amb));
}

#[tokio::test]
async fn an_access_token_for_another_resource_with_a_machine_subject_passes_no_route() {
    // The attack: an authorization server sharing the key set mints an `at+jwt` for another
    // resource; its subject is `mch_x`. Read as M2M (Clerk's order), it would meet M2M rules
    // that check no issuer (the old default); read as OAuth, it would fail the audience.
    let v = rules_verifier(SessionRules::new(), M2mRules::new().skip_issuer_check());
    let now = now();
    let foreign = signed(
        "at+jwt",
        None,
        &json!({"iss":"https://other-as.example","aud":"https://other-api.example","sub":"mch_x",
                "client_id":"client_x","iat":now,"exp":now + 600,"jti":"at_x","scopes":"write:users"}),
    );
    for token_type in [TokenType::M2mToken, TokenType::OAuthToken, TokenType::SessionToken] {
        assert!(
            v.verify_token(&foreign, token_type).await.is_err(),
            "verified as {token_type}"
        );
    }
    let jwt = Arc::new(v);
    let g = TokenGate::builder()
        .verifier_for(jwt.token_types(), jwt.clone())
        .build()
        .unwrap();
    for accepts in [TokenType::M2mToken, TokenType::OAuthToken, TokenType::SessionToken] {
        let policy = Policy::accepting(TokenTypes::EMPTY.with(accepts));
        assert_eq!(through_gate(&g, &policy, &foreign).await, Err(Amb), "{accepts} route");
    }
    assert_eq!(through_gate(&g, &every_jwt_type(), &foreign).await, Err(Amb));
    assert_eq!(jwt.cached_tokens(), 0, "an ambiguous token is never remembered");
    assert!(jwt.recall_jwt(&foreign).is_none());
}

#[tokio::test]
async fn every_disagreement_is_ambiguous_before_any_verifier_and_for_every_type_asked() {
    let mut machine_access = oauth_claims();
    machine_access["sub"] = json!("mch_1");
    let cases = [
        ("at+jwt with a machine subject", signed("at+jwt", None, &machine_access)),
        (
            "application/at+jwt with a machine subject",
            signed("application/at+jwt", None, &machine_access),
        ),
        (
            "M2M category on a user's session",
            signed("JWT", Some(M2M_TOKEN), &session_claims()),
        ),
        (
            "session category on a machine's token",
            signed("JWT", Some(SESSION_TOKEN), &m2m_claims()),
        ),
        (
            "session category on an at+jwt",
            signed("at+jwt", Some(SESSION_TOKEN), &oauth_claims()),
        ),
        (
            "M2M category on an at+jwt",
            signed("at+jwt", Some(M2M_TOKEN), &oauth_claims()),
        ),
        (
            "M2M category, at+jwt and a machine subject",
            signed("at+jwt", Some(M2M_TOKEN), &machine_access),
        ),
    ];
    // Not even a verifier that counts its calls is asked: classification refuses first.
    let counted = Arc::new(tokengate_runtime::StaticVerifier::new());
    let g = TokenGate::builder()
        .verifier_for(
            TokenTypes::DEFAULT
                .with(TokenType::M2mToken)
                .with(TokenType::OAuthToken),
            counted.clone(),
        )
        .build()
        .unwrap();
    let v = verifier();
    for (name, token) in &cases {
        assert_eq!(through_gate(&g, &every_jwt_type(), token).await, Err(Amb), "{name}");
        for token_type in [TokenType::SessionToken, TokenType::M2mToken, TokenType::OAuthToken] {
            assert!(
                v.verify_token(token, token_type).await.is_err(),
                "{name}: verified as {token_type}"
            );
        }
    }
    assert_eq!(counted.calls(), 0, "no verifier was called");
    assert_eq!(v.cached_tokens(), 0);
    // Each is refused for its signals alone: the same kinds with one reading pass.
    let g = gate(verifier());
    let one_reading = [
        (signed("JWT", Some(M2M_TOKEN), &m2m_claims()), TokenType::M2mToken),
        (
            signed("JWT", Some(SESSION_TOKEN), &session_claims()),
            TokenType::SessionToken,
        ),
        (signed("at+jwt", None, &oauth_claims()), TokenType::OAuthToken),
    ];
    for (token, token_type) in one_reading {
        assert_eq!(through_gate(&g, &every_jwt_type(), &token).await, Ok(token_type));
    }
}
