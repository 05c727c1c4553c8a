//! The attributes name each route in metrics and traces by the handler's path, as the
//! route-policy report shows it (`module::handler`); a group layer by the name it was given.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode, header};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokengate::routing::{Router, get};
use tokengate::verifier::StaticVerifier;
use tokengate::{AuthInfo, PolicyLayer, TokenGate, TokenType, accepts_token, policy, require_scope};
use tower::ServiceExt;

#[accepts_token(api_key)]
#[require_scope("write:users")]
async fn create() -> &'static str {
    "created"
}

async fn stats() -> &'static str {
    "stats"
}

#[tokio::test]
async fn routes_are_named_by_their_handlers_path_and_layers_by_their_name() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut info = AuthInfo::new(TokenType::ApiKey);
    info.scopes = vec!["write:users".into()];
    let gate = TokenGate::builder()
        .verifier(
            TokenType::ApiKey,
            Arc::new(StaticVerifier::new().with_token("ak_known_0123456789", info)),
        )
        .build()
        .unwrap();
    let admin = Router::new()
        .route("/stats", get(stats))
        .guard(PolicyLayer::new(gate.clone(), policy!(accepts_token(api_key))).named("admin"));
    let app = Router::new()
        .route("/items", get(create))
        .nest("/admin", admin)
        .with_state(gate)
        .into_axum();
    for (path, token, status) in [
        ("/items", "ak_known_0123456789", StatusCode::OK),
        ("/items", "ak_other_0123456789", StatusCode::UNAUTHORIZED),
        ("/admin/stats", "ak_known_0123456789", StatusCode::OK),
    ] {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), status, "{path}");
    }
    let text = prometheus.render();
    let route = create_route();
    for series in [
        format!(r#"tokengate_decisions_total{{route="{route}",token_type="api_key",outcome="allowed",reason="ok"}} 1"#),
        format!(
            r#"tokengate_decisions_total{{route="{route}",token_type="api_key",outcome="refused",reason="unknown-token"}} 1"#
        ),
        r#"tokengate_decisions_total{route="admin",token_type="api_key",outcome="allowed",reason="ok"} 1"#.to_owned(),
    ] {
        assert!(text.lines().any(|l| l == series), "no `{series}` in:\n{text}");
    }
}

/// What the report calls the handler: the same string names its route in the metrics.
fn create_route() -> String {
    let report = Router::<TokenGate>::new().route("/items", get(create)).report();
    assert_eq!(report.routes[0].handler, "telemetry::create");
    report.routes[0].handler.clone()
}
