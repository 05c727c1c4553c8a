//! `ToolPolicies` in front of an MCP endpoint, through a real router: each `tools/call` meets
//! its tool's policy or gets the MCP scope challenge; the body reaches the endpoint unchanged;
//! an ambiguous body is refused, an oversized one too; the route's guard verifies once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use tokengate_runtime::mcp::{MAX_BODY_BYTES, ToolPolicies};
use tokengate_runtime::metadata::ProtectedResource;
use tokengate_runtime::routing::{Router, post};
use tokengate_runtime::verifier::StaticVerifier;
use tokengate_runtime::{
    AuthInfo, Match, Policy, PolicyLayer, Requirement, RequirementKind, TokenGate, TokenType, TokenTypes,
};
use tower::ServiceExt as _;

fn scope(s: &'static str) -> Policy {
    Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken))
        .require(Requirement::new(RequirementKind::Scope, Match::All, [s]).unwrap())
}

fn tools() -> ToolPolicies {
    ToolPolicies::new()
        .tool("list_users", scope("users:read"))
        .tool("delete_user", scope("users:write"))
}

#[derive(Clone)]
struct App {
    gate: TokenGate,
    tools: Arc<ToolPolicies>,
}

/// The MCP endpoint: the guard, then an echo of the body the MCP server would get.
async fn endpoint(State(app): State<App>, request: Request) -> Response {
    match app.tools.authorize(&app.gate, request).await {
        Ok(request) => axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap()
            .into_response(),
        Err(refusal) => refusal,
    }
}

fn fixture() -> (axum::Router, Arc<StaticVerifier>) {
    let resource = ProtectedResource::new("https://api.example/mcp").unwrap();
    let info = |scopes: &[&str]| {
        let mut info = AuthInfo::new(TokenType::OAuthToken);
        info.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        info
    };
    let verifier = Arc::new(
        StaticVerifier::new()
            .with_token("oat_read", info(&["users:read"]))
            .with_token("oat_all", info(&["users:read", "users:write"])),
    );
    let gate = TokenGate::builder()
        .verifier(TokenType::OAuthToken, verifier.clone())
        .resource_metadata(resource.metadata_url())
        .build()
        .unwrap();
    let app = App {
        gate: gate.clone(),
        tools: Arc::new(tools()),
    };
    let router = Router::new()
        .route("/mcp", post(endpoint))
        .guard(PolicyLayer::new(
            gate,
            Policy::accepting(TokenTypes::EMPTY.with(TokenType::OAuthToken)),
        ))
        .mcp_tools("/mcp", &app.tools)
        .with_state(app)
        .into_axum();
    (router, verifier)
}

async fn call(router: &axum::Router, token: &str, body: String) -> (StatusCode, Option<String>, String) {
    let request = http::Request::post("/mcp")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, challenge, String::from_utf8(bytes.to_vec()).unwrap())
}

fn tool_call(name: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#)
}

#[tokio::test]
async fn each_tool_call_meets_its_own_policy() {
    let (router, verifier) = fixture();
    // Allowed: the body reaches the endpoint byte for byte.
    let body = tool_call("list_users");
    assert_eq!(
        call(&router, "oat_read", body.clone()).await,
        (StatusCode::OK, None, body)
    );
    let (status, challenge, _) = call(&router, "oat_all", tool_call("delete_user")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(challenge, None);
    // Refused: the MCP scope challenge, pointing at the metadata.
    let (status, challenge, body) = call(&router, "oat_read", tool_call("delete_user")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        challenge.unwrap(),
        "Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource/mcp\", error=\"insufficient_scope\", error_description=\"insufficient-scope\", scope=\"users:write\""
    );
    // One refused call in a batch refuses the batch.
    let batch = format!("[{}, {}]", tool_call("list_users"), tool_call("delete_user"));
    assert_eq!(call(&router, "oat_read", batch).await.0, StatusCode::FORBIDDEN);
    // Other methods and unknown tools go on to the MCP server.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned();
    assert_eq!(call(&router, "oat_read", list).await.0, StatusCode::OK);
    assert_eq!(call(&router, "oat_read", tool_call("unknown")).await.0, StatusCode::OK);
    // The route's guard verified each token once; the tool checks reused its identity.
    assert_eq!(verifier.calls(), 6);
}

#[tokio::test]
async fn a_body_the_guard_cannot_read_is_refused() {
    let (router, _) = fixture();
    let twice = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_users","name":"delete_user"}}"#;
    let (status, _, body) = call(&router, "oat_read", twice.to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("-32600"), "{body}");
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(call(&router, "oat_all", huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // Without a token the route's guard answers first, whatever the body.
    let (status, _, _) = call(&router, "", tool_call("list_users")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
