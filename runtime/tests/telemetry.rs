//! Metrics and traces through a real router: known traffic (allowed requests, each kind of
//! refusal, cache hits, a backend that is down) read back as exact counts from the Prometheus
//! exporter's text, and no label, span field or event field holding a token or a part of one.
//!
//! Each test installs its own recorder and subscriber for its thread only
//! (`metrics::set_default_local_recorder`, `tracing::subscriber::set_default`) and runs its
//! requests on a current-thread runtime, so tests do not see each other's figures.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode, header};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::json;
use tokengate_runtime::keys::{KeySpec, KeyVerifier, MemoryKeyStore};
use tokengate_runtime::policy::{Match, Requirement, RequirementKind};
use tokengate_runtime::verifier::{Credential, Verifier, VerifyFuture};
use tokengate_runtime::{
    Guard, JwtVerifier, Policy, PolicySource, TokenGate, TokenType, TokenTypes, VerifyError, telemetry,
};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod jwt_support;

use jwt_support::{Rsa, now, session_claims};

// ---------------------------------------------------------------------------------------
// The application: two routes, three verifiers.

/// `GET /write`: API keys (which need `write:users`) and session tokens.
struct WritePolicy;

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
struct OAuthPolicy;

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

struct App {
    router: Router,
    writer: String,
    reader: String,
    unknown: String,
    machine: String,
    session: String,
    expired: String,
}

async fn app() -> App {
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

async fn send(router: &Router, path: &str, authorization: Option<&str>) -> StatusCode {
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
fn mistyped(secret: &str) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    let i = secret.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// The known traffic; returns every secret it presented.
async fn traffic(app: &App) -> Vec<String> {
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

fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    (recorder, handle)
}

/// The value of the series `name{labels}` in Prometheus's text (labels in the order given).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn decision(route: &str, token_type: &str, outcome: &str, reason: &str) -> String {
    format!(
        "tokengate_decisions_total{{route=\"{route}\",token_type=\"{token_type}\",outcome=\"{outcome}\",reason=\"{reason}\"}}"
    )
}

#[tokio::test]
async fn known_traffic_reads_back_as_exact_counts() {
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let app = app().await;
    traffic(&app).await;
    let text = handle.render();

    let expected: &[(String, f64)] = &[
        (decision("app::write", "api_key", "allowed", "ok"), 3.0),
        (decision("app::write", "api_key", "refused", "insufficient-scope"), 1.0),
        (decision("app::write", "api_key", "refused", "unknown-token"), 2.0),
        (decision("app::write", "api_key", "refused", "bad-checksum"), 1.0),
        (decision("app::write", "none", "refused", "missing-credentials"), 1.0),
        (decision("app::write", "none", "refused", "missing-bearer-token"), 1.0),
        (decision("app::write", "session_token", "allowed", "ok"), 2.0),
        (decision("app::write", "session_token", "refused", "token-expired"), 1.0),
        (
            decision("app::write", "m2m_token", "refused", "token-type-mismatch"),
            1.0,
        ),
        (
            decision("app::oauth", "oauth_token", "error", "verifier-unavailable"),
            1.0,
        ),
        // The writer's first request, the reader's and the first unknown one reach the store;
        // the writer's next two are hits; the second unknown one is a remembered refusal.
        (
            r#"tokengate_cache_lookups_total{cache="verified_keys",result="hit"}"#.into(),
            2.0,
        ),
        (
            r#"tokengate_cache_lookups_total{cache="verified_keys",result="miss"}"#.into(),
            3.0,
        ),
        (
            r#"tokengate_cache_lookups_total{cache="refused_keys",result="hit"}"#.into(),
            1.0,
        ),
        (
            r#"tokengate_cache_lookups_total{cache="refused_keys",result="miss"}"#.into(),
            3.0,
        ),
        // The session token's first use and the expired token are checked; its reuse is a hit.
        (
            r#"tokengate_cache_lookups_total{cache="verified_jwts",result="hit"}"#.into(),
            1.0,
        ),
        (
            r#"tokengate_cache_lookups_total{cache="verified_jwts",result="miss"}"#.into(),
            2.0,
        ),
        (
            r#"tokengate_backend_calls_total{backend="key_store",outcome="ok"}"#.into(),
            3.0,
        ),
        (
            r#"tokengate_backend_call_duration_seconds_count{backend="key_store"}"#.into(),
            3.0,
        ),
        (r#"tokengate_backend_calls_in_flight{backend="key_store"}"#.into(), 0.0),
        (
            r#"tokengate_verification_duration_seconds_count{verifier="api-key-store",token_type="api_key"}"#.into(),
            3.0,
        ),
        (
            r#"tokengate_verification_duration_seconds_count{verifier="jwt",token_type="session_token"}"#.into(),
            2.0,
        ),
        (
            r#"tokengate_verification_duration_seconds_count{verifier="down",token_type="oauth_token"}"#.into(),
            1.0,
        ),
    ];
    let mut wrong = Vec::new();
    for (series, want) in expected {
        let got = value(&text, series);
        if got != Some(*want) {
            wrong.push(format!("{series}: expected {want}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n--- exporter output:\n{text}", wrong.join("\n"));
    let decisions: f64 = text
        .lines()
        .filter(|l| l.starts_with("tokengate_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(decisions, 14.0, "one decision per request, no other series:\n{text}");
    assert!(!text.contains("tokengate_key_decisions_total"), "key ids are opt-in");
}

#[tokio::test]
async fn key_ids_are_labels_only_when_opted_in() {
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let keys = Arc::new(KeyVerifier::new(Arc::new(MemoryKeyStore::new())));
    let issued = keys
        .issue(KeySpec::api_key("user_w", "writer").scope("write:users"))
        .await
        .unwrap();
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, keys)
        .metrics_key_ids(true)
        .build()
        .unwrap();
    let router = Router::new()
        .route("/write", get(|_: Guard<WritePolicy>| async { "written" }))
        .with_state(gate);
    let bearer = format!("Bearer {}", issued.secret.expose());
    for _ in 0..2 {
        assert_eq!(send(&router, "/write", Some(&bearer)).await, StatusCode::OK);
    }
    let text = handle.render();
    let series = format!(
        "tokengate_key_decisions_total{{route=\"app::write\",token_type=\"api_key\",key_id=\"{}\"}}",
        issued.record.id
    );
    assert_eq!(value(&text, &series), Some(2.0), "{text}");
    assert!(!text.contains(issued.secret.expose()), "{text}");
}

// ---------------------------------------------------------------------------------------
// Spans and events, every field as text.

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut Vec<String>, &'a str);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push(format!("{} {}={value:?}", self.1, field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{} {}={value}", self.1, field.name()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut lines = self.0.lock().unwrap();
        let name = attrs.metadata().name();
        lines.push(format!("span {name}"));
        attrs.record(&mut Fields(&mut lines, name));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let name = ctx.span(id).map_or("?", |s| s.name());
        values.record(&mut Fields(&mut self.0.lock().unwrap(), name));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        event.record(&mut Fields(&mut self.0.lock().unwrap(), "event"));
    }
}

/// The parts of a token a leak could show: the whole, each JWT segment, the random part of
/// an opaque secret, and any 12 characters in a row of it.
fn fragments(secret: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![secret.to_owned()];
    out.extend(secret.split('.').filter(|s| s.len() >= 12).map(str::to_owned));
    let chars: Vec<char> = secret.chars().collect();
    out.extend(chars.windows(12).step_by(6).map(|w| w.iter().collect::<String>()));
    out
}

#[tokio::test]
async fn no_label_span_field_or_event_holds_a_secret() {
    let (recorder, handle) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let _subscriber = tracing::subscriber::set_default(subscriber);
    let app = app().await;
    let secrets = traffic(&app).await;

    let lines = captured.0.lock().unwrap().clone();
    // The capture works: the spans and their fields are there to be searched.
    let authorizations = lines.iter().filter(|l| *l == "span tokengate.authorize").count();
    assert_eq!(authorizations, 14, "{lines:#?}");
    for field in [
        "tokengate.authorize code.function.name=app::write",
        "tokengate.authorize tokengate.decision=refused",
        "tokengate.authorize tokengate.reason=bad-checksum",
        "tokengate.authorize tokengate.token_type=session_token",
        "tokengate.authorize http.response.status_code=503",
        "tokengate.authorize otel.status_code=ERROR",
        "tokengate.authorize tokengate.policy=accepts session_token, api_key; scope `write:users` (for api_key)",
        "tokengate.key_store.lookup tokengate.outcome=ok",
    ] {
        assert!(lines.iter().any(|l| l == field), "no `{field}` in {lines:#?}");
    }
    let text = handle.render();
    for secret in &secrets {
        for fragment in fragments(secret) {
            assert!(!text.contains(&fragment), "a label holds `{fragment}`:\n{text}");
            let leak = lines.iter().find(|l| l.contains(&fragment));
            assert!(leak.is_none(), "`{}` holds a part of a token", leak.unwrap());
        }
    }
    assert_eq!(telemetry::DECISIONS, "tokengate_decisions_total");
}

/// The dashboard's queries name only metrics tokengate records.
#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let known = [
        telemetry::DECISIONS,
        telemetry::KEY_DECISIONS,
        telemetry::CACHE_LOOKUPS,
        telemetry::VERIFICATION_DURATION,
        telemetry::BACKEND_CALLS,
        telemetry::BACKEND_CALL_DURATION,
        telemetry::BACKEND_CALLS_IN_FLIGHT,
        telemetry::REVOCATION_NOTICES,
    ];
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("tokengate_").map(|_| word) {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    known.contains(&base),
                    "{expr} names {name}, which tokengate does not record"
                );
                used.insert(base);
            }
        }
    }
    for name in known.iter().filter(|n| **n != telemetry::KEY_DECISIONS) {
        assert!(used.contains(name), "the dashboard shows nothing of {name}");
    }
}
