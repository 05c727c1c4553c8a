//! RFC 9728 Protected Resource Metadata through a router: the document's rules (an absolute
//! `resource` without fragment, equal to the identifier its URL was built from), its scopes
//! equal to what the report says routes and operations require of OAuth tokens, the public
//! routes that serve it, and `resource_metadata` in the gate's challenges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use tokengate_runtime::metadata::{ProtectedResource, WELL_KNOWN_PATH};
use tokengate_runtime::report::{Format, RouteStatus};
use tokengate_runtime::routing::{Router, get};
use tokengate_runtime::verifier::StaticVerifier;
use tokengate_runtime::{Match, Policy, PolicyLayer, Requirement, RequirementKind, TokenGate, TokenType, TokenTypes};
use tower::ServiceExt as _;

fn scope(values: &[&'static str]) -> Requirement {
    Requirement::new(RequirementKind::Scope, Match::All, values.iter().copied()).unwrap()
}

fn types(list: &[TokenType]) -> TokenTypes {
    list.iter().copied().collect()
}

fn gate(resource: &ProtectedResource) -> TokenGate {
    TokenGate::builder()
        .verifier_for(
            types(&[TokenType::OAuthToken, TokenType::ApiKey]),
            Arc::new(StaticVerifier::new()),
        )
        .resource_metadata(resource.metadata_url())
        .build()
        .unwrap()
}

async fn ok() -> &'static str {
    "ok"
}

/// Routes with scopes for OAuth tokens, one for API keys only, and an operation.
fn app(resource: &ProtectedResource) -> Router {
    let oauth_and_keys = types(&[TokenType::OAuthToken, TokenType::ApiKey]);
    let reports = Policy::accepting(oauth_and_keys)
        .require(scope(&["reports:read"]))
        .require(scope(&["admin"]).only_for(types(&[TokenType::ApiKey])));
    let write = Policy::accepting(oauth_and_keys).require(scope(&["users:write", "audit:write"]));
    Router::new()
        .route("/reports", get(ok))
        .guard(PolicyLayer::new(gate(resource), reports))
        .route("/rpc", get(ok))
        .operation(Method::POST, "/rpc", "tools/call delete_user", write)
        .serve_resource_metadata(resource)
}

async fn fetch(app: Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .into_axum()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cors = response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).cloned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    if status == StatusCode::OK {
        assert_eq!(cors.unwrap(), "*");
    }
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn the_document_is_served_where_rfc_9728_puts_it_and_names_its_resource() {
    let resource = ProtectedResource::new("https://api.example/v1/mcp")
        .unwrap()
        .authorization_server("https://auth.example")
        .unwrap()
        .authorization_server("https://login.partner.example")
        .unwrap()
        .resource_documentation("https://api.example/docs");
    let (status, document) = fetch(app(&resource), "/.well-known/oauth-protected-resource/v1/mcp").await;
    assert_eq!(status, StatusCode::OK);
    // §3.3: the `resource` is the identifier the well-known URL was built from: the origin
    // and the path after the well-known segment.
    let resource_url = document["resource"].as_str().unwrap();
    let rebuilt = resource
        .metadata_url()
        .replace("/.well-known/oauth-protected-resource", "");
    assert_eq!(resource_url, rebuilt);
    let parsed = url::Url::parse(resource_url).unwrap();
    assert!(parsed.fragment().is_none() && parsed.has_host());
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!(["https://auth.example", "https://login.partner.example"])
    );
    assert_eq!(document["resource_documentation"], "https://api.example/docs");
    assert!(document.get("resource_name").is_none(), "{document}");
    // The root location serves the same document; others are not found.
    assert_eq!(fetch(app(&resource), WELL_KNOWN_PATH).await, (StatusCode::OK, document));
    let (missing, _) = fetch(app(&resource), "/.well-known/oauth-protected-resource/v1").await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
}

#[test]
fn scopes_supported_are_the_scopes_the_report_requires_of_oauth_tokens() {
    let resource = ProtectedResource::new("https://api.example").unwrap();
    let app = app(&resource);
    let report = app.report();
    let mut from_report: Vec<String> = report
        .routes
        .iter()
        .flat_map(|r| &r.requirements)
        .filter(|q| q.kind == RequirementKind::Scope && q.applies_to.contains(TokenType::OAuthToken))
        .flat_map(|q| q.values.clone())
        .collect();
    from_report.sort();
    from_report.dedup();
    let document = app.resource_metadata(&resource);
    assert_eq!(document.scopes_supported, from_report);
    // Sorted, the operation's included, the API-key-only `admin` left out (not an OAuth scope).
    assert_eq!(
        document.scopes_supported,
        ["audit:write", "reports:read", "users:write"]
    );
    // The operation is a guarded row of its route; the metadata routes are public.
    let operation = report.routes.iter().find(|r| r.operation.is_some()).unwrap();
    assert_eq!(
        (operation.method.as_str(), operation.path.as_str(), operation.status),
        ("POST", "/rpc", RouteStatus::Guarded)
    );
    assert_eq!(operation.handler, "tools/call delete_user");
    let public: Vec<&str> = report
        .routes
        .iter()
        .filter(|r| r.status == RouteStatus::Public)
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(public, [WELL_KNOWN_PATH]);
    // The JSON still follows the published schema; OpenAPI lists the route, not the operation.
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../docs/policy-report.schema.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&json), "{json:#}");
    assert_eq!(json["routes"][2]["operation"], "tools/call delete_user");
    let openapi = report.openapi();
    assert!(openapi["paths"]["/rpc"].get("post").is_none(), "{openapi:#}");
    assert!(openapi["paths"]["/rpc"].get("get").is_some(), "{openapi:#}");
}

#[tokio::test]
async fn the_served_document_counts_routes_added_after_it_nested_or_merged() {
    let resource = ProtectedResource::new("https://api.example").unwrap();
    let policy = |s: &'static str| Policy::accepting(TokenTypes::ANY).require(scope(&[s]));
    let nested = Router::new()
        .route("/b", get(ok))
        .guard(PolicyLayer::new(gate(&resource), policy("b:read")));
    let app: Router = Router::new()
        .serve_resource_metadata(&resource)
        .operation(Method::POST, "/a", "a", policy("a:write"))
        .nest("/n", nested);
    // The call reads the routes so far; the served document, the final ones.
    assert_eq!(app.resource_metadata(&resource).scopes_supported, ["a:write", "b:read"]);
    let (_, document) = fetch(app, WELL_KNOWN_PATH).await;
    assert_eq!(document["scopes_supported"], serde_json::json!(["a:write", "b:read"]));
}

#[tokio::test]
async fn every_401_and_403_points_at_the_document() {
    let resource = ProtectedResource::new("https://api.example/v1/mcp").unwrap();
    let pointer = "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource/v1/mcp\"";
    let response = app(&resource)
        .into_axum()
        .oneshot(Request::get("/reports").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert_eq!(challenge, format!("Bearer realm=\"api\", {pointer}"));
}

#[test]
fn a_metadata_url_that_cannot_be_sent_is_a_configuration_error() {
    for url in [
        "/relative",
        "https://a.example/x\"y",
        "ftp://a.example/x",
        "https://a.example/a b",
    ] {
        let e = TokenGate::builder().resource_metadata(url).build().unwrap_err();
        assert!(e.to_string().contains("ProtectedResource::metadata_url"), "{url}: {e}");
    }
}
