//! The application the telemetry tests send their known traffic to: two routes, three
//! verifiers (a key store in memory, session JWTs, an OAuth verifier whose backend is down).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode, header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::json;
use tokengate_runtime::keys::{KeySpec, KeyVerifier, MemoryKeyStore};
use tokengate_runtime::policy::{Match, Requirement, RequirementKind};
use tokengate_runtime::verifier::{Credential, Verifier, VerifyFuture};
use tokengate_runtime::{Guard, JwtVerifier, Policy, PolicySource, TokenGate, TokenType, TokenTypes, VerifyError};
use tower::ServiceExt;

use super::jwt_support::{Rsa, now, session_claims};

// ---------------------------------------------------------------------------------------
// The application: two routes, three verifiers.

/// `GET /write`: API keys (which need `write:users`) and session tokens.
pub struct WritePolicy;

impl PolicySource for WritePolicy {
    fn policy() -> &'static Policy {
        static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
            let scope = Requirement::new(RequirementKind::Scope, Match::All, ["write:users"])
                .unwrap()
                .only_for(TokenTypes::EMPTY.with(TokenType::ApiKey));
            Policy::accepting(TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::SessionToken)).require(scope)
        });
        &POLICY
    }

    fn route() -> &'static str {
        "app::write"
    }
}

/// `GET /oauth`: OAuth tokens, whose verifier's backend is down.
pub struct OAuthPolicy;

impl PolicySource for OAuthPolicy {
    fn policy() -> &'static Policy {
        static POLICY: Policy = Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken));
        &POLICY
    }

    fn route() -> &'static str {
        "app::oauth"
    }
}

/// A verifier whose backend never answers.
struct Down;

impl Verifier for Down {
    fn verify<'a>(&'a self, _: Credential<'a>) -> VerifyFuture<'a> {
        Box::pin(async { Err(VerifyError::unavailable("the authorization server is down")) })
    }

    fn name(&self) -> &'static str {
        "down"
    }
}

pub struct App {
    pub router: Router,
    writer: String,
    reader: String,
    unknown: String,
    machine: String,
    session: String,
    expired: String,
}

pub async fn app() -> App {
    let keys = Arc::new(KeyVerifier::new(Arc::new(MemoryKeyStore::new())));
    let writer = keys
        .issue(KeySpec::api_key("user_w", "writer").scope("write:users"))
        .await
        .unwrap();
    let reader = keys.issue(KeySpec::api_key("user_r", "reader")).await.unwrap();
    let machine = keys.issue(KeySpec::m2m_token("mch_1", "machine")).await.unwrap();
    // Well formed, right checksum, in no store this gate reads.
    let elsewhere = KeyVerifier::new(Arc::new(MemoryKeyStore::new()));
    let unknown = elsewhere.issue(KeySpec::api_key("user_x", "other")).await.unwrap();

    let rsa = Rsa::generate("k1");
    let sessions = Arc::new(JwtVerifier::session_from_pem(&rsa.public_pem()).unwrap());
    let session = rsa.token(&session_claims());
    let mut old = session_claims();
    old["exp"] = json!(now() - 600);
    old["iat"] = json!(now() - 1200);
    old["nbf"] = json!(now() - 1200);
    let expired = rsa.token(&old);

    let gate = TokenGate::builder()
        .verifier_for(
            TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken),
            keys,
        )
        .verifier(TokenType::SessionToken, sessions)
        .verifier(TokenType::OAuthToken, Arc::new(Down))
        .build()
        .unwrap();
    let router = Router::new()
        .route("/write", get(|_: Guard<WritePolicy>| async { "written" }))
        .route("/oauth", get(|_: Guard<OAuthPolicy>| async { "read" }))
        .with_state(gate);
    App {
        router,
        writer: writer.secret.expose().to_owned(),
        reader: reader.secret.expose().to_owned(),
        unknown: unknown.secret.expose().to_owned(),
        machine: machine.secret.expose().to_owned(),
        session,
        expired,
    }
}

pub async fn send(router: &Router, path: &str, authorization: Option<&str>) -> StatusCode {
    let mut request = Request::get(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

/// One character of the secret's random part changed: the checksum no longer matches.
pub fn mistyped(secret: &str) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    let i = secret.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// The known traffic; returns every secret it presented.
pub async fn traffic(app: &App) -> Vec<String> {
    let bearer = |t: &str| format!("Bearer {t}");
    let r = &app.router;
    for _ in 0..3 {
        assert_eq!(send(r, "/write", Some(&bearer(&app.writer))).await, StatusCode::OK);
    }
    assert_eq!(
        send(r, "/write", Some(&bearer(&app.reader))).await,
        StatusCode::FORBIDDEN
    );
    for _ in 0..2 {
        assert_eq!(
            send(r, "/write", Some(&bearer(&app.unknown))).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let typo = mistyped(&app.writer);
    assert_eq!(send(r, "/write", Some(&bearer(&typo))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(r, "/write", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(r, "/write", Some("Bearer")).await, StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        assert_eq!(send(r, "/write", Some(&bearer(&app.session))).await, StatusCode::OK);
    }
    assert_eq!(
        send(r, "/write", Some(&bearer(&app.expired))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(r, "/write", Some(&bearer(&app.machine))).await,
        StatusCode::UNAUTHORIZED
    );
    let opaque = "oat_0123456789abcdefghijklmnopqrstuv";
    assert_eq!(
        send(r, "/oauth", Some(&bearer(opaque))).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    vec![
        app.writer.clone(),
        app.reader.clone(),
        app.unknown.clone(),
        app.machine.clone(),
        app.session.clone(),
        app.expired.clone(),
        typo,
        opaque.to_owned(),
    ]
}

pub fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// The value of the series `name{labels}` in Prometheus's text (labels in the order given).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn decision(route: &str, token_type: &str, outcome: &str, reason: &str) -> String {
    format!(
        "tokengate_decisions_total{{route=\"{route}\",token_type=\"{token_type}\",outcome=\"{outcome}\",reason=\"{reason}\"}}"
    )
}
