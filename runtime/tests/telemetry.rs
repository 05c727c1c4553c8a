//! Metrics through a real router: known traffic (allowed requests, each kind of refusal,
//! cache hits, a backend that is down) read back as exact counts from the Prometheus
//! exporter's text; key ids only when opted in; the dashboard's queries. Spans and events:
//! `telemetry_spans.rs`.
//!
//! Each test installs its own recorder for its thread only (`metrics::set_default_local_recorder`)
//! and runs its requests on a current-thread runtime, so tests do not see each other's figures.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use tokengate_runtime::keys::{KeySpec, KeyVerifier, MemoryKeyStore};
use tokengate_runtime::{Guard, TokenGate, TokenType, telemetry};

mod jwt_support;
mod telemetry_support;

use telemetry_support::{WritePolicy, app, decision, recorder, send, traffic, value};

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
