//! The route-policy report over nested, merged and layered routers. The handler records are
//! submitted the way `#[accepts_token]` and `#[public]` submit them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::borrow::Cow;
use std::sync::Arc;

use tokengate_runtime::registry::{HandlerRecord, HandlerStatus, type_id_of};
use tokengate_runtime::report::{Format, RouteStatus};
use tokengate_runtime::routing::{Router, get, post};
use tokengate_runtime::{
    Match, Policy, PolicyLayer, Requirement, RequirementKind, StaticVerifier, TokenGate, TokenType, TokenTypes,
};

async fn list_users() -> &'static str {
    "users"
}
async fn create_user() -> &'static str {
    "created"
}
async fn health() -> &'static str {
    "ok"
}
async fn forgotten() -> &'static str {
    "nobody guards me"
}
async fn stats() -> &'static str {
    "stats"
}

static WRITE: [Cow<'static, str>; 1] = [Cow::Borrowed("write:users")];
static READ_OR_ADMIN: [Cow<'static, str>; 2] = [Cow::Borrowed("read:users"), Cow::Borrowed("admin")];
static CREATE_REQS: [Requirement; 1] = [Requirement::from_parts(
    RequirementKind::Scope,
    Match::All,
    &WRITE,
    TokenTypes::EMPTY.with(TokenType::ApiKey),
)];
static CREATE_POLICY: Policy = Policy::from_parts(
    TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::OAuthToken, TokenType::ApiKey]),
    &CREATE_REQS,
);
static LIST_REQS: [Requirement; 1] = [Requirement::from_parts(
    RequirementKind::Scope,
    Match::Any,
    &READ_OR_ADMIN,
    TokenTypes::EMPTY,
)];
static LIST_POLICY: Policy = Policy::from_parts(TokenTypes::EMPTY.with(TokenType::ApiKey), &LIST_REQS);

inventory::submit! {
    HandlerRecord { name: "list_users", module_path: module_path!(), file: file!(), line: 17, status: HandlerStatus::Guarded(&LIST_POLICY), type_id: Some(|| type_id_of(&list_users)) }
}
inventory::submit! {
    HandlerRecord { name: "create_user", module_path: module_path!(), file: file!(), line: 20, status: HandlerStatus::Guarded(&CREATE_POLICY), type_id: Some(|| type_id_of(&create_user)) }
}
inventory::submit! {
    HandlerRecord { name: "health", module_path: module_path!(), file: file!(), line: 23, status: HandlerStatus::Public, type_id: Some(|| type_id_of(&health)) }
}

fn gate() -> TokenGate {
    TokenGate::builder()
        .verifier_for(TokenTypes::ANY, Arc::new(StaticVerifier::new()))
        .build()
        .unwrap()
}

fn app() -> Router {
    let users = Router::new().route("/users", get(list_users).post(create_user));
    let admin = Router::new()
        .route("/stats", get(stats))
        .route("/users", post(create_user))
        .guard(PolicyLayer::new(
            gate(),
            Policy::accepting(TokenTypes::EMPTY.with(TokenType::M2mToken).with(TokenType::ApiKey))
                .require(Requirement::new(RequirementKind::Scope, Match::All, ["admin"]).unwrap()),
        ));
    Router::new()
        .route("/health", get(health))
        .nest("/api", users.merge(Router::new().route("/forgotten", get(forgotten))))
        .nest("/admin", admin)
}

#[test]
fn every_route_with_its_status_policy_and_location() {
    let report = app().report();
    let rows: Vec<(&str, &str, RouteStatus)> = report
        .routes
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("GET", "/health", RouteStatus::Public),
            ("GET", "/api/users", RouteStatus::Guarded),
            ("POST", "/api/users", RouteStatus::Guarded),
            ("GET", "/api/forgotten", RouteStatus::Unguarded),
            ("GET", "/admin/stats", RouteStatus::Guarded),
            ("POST", "/admin/users", RouteStatus::Guarded),
        ]
    );
    let create = &report.routes[2];
    assert_eq!(create.handler, "report::create_user");
    assert_eq!(create.source.as_ref().unwrap().line, 20);
    assert_eq!(
        create.accepts,
        TokenTypes::from_slice(&[TokenType::SessionToken, TokenType::OAuthToken, TokenType::ApiKey])
    );
    assert_eq!(
        create.requirements[0].applies_to,
        TokenTypes::EMPTY.with(TokenType::ApiKey)
    );

    // Under the admin group: the handler accepts three types, the layer two; one gets through both.
    let admin_create = &report.routes[5];
    assert_eq!(admin_create.accepts, TokenTypes::EMPTY.with(TokenType::ApiKey));
    assert_eq!(admin_create.layers.len(), 1);
    assert_eq!(admin_create.requirements.len(), 2);
    // A handler without any attribute under a group layer is guarded by the layer alone.
    let admin_stats = &report.routes[4];
    assert!(admin_stats.handler_policy.is_none());
    assert_eq!(admin_stats.handler, "report::stats");
    assert!(admin_stats.source.is_none());
}

#[test]
fn ci_mode_names_exactly_the_unguarded_routes() {
    let report = app().report();
    let err = report.deny_unguarded().unwrap_err();
    assert!(err.starts_with("1 route is without a tokengate policy"), "{err}");
    assert!(err.contains("GET /api/forgotten (handler report::forgotten)"), "{err}");
    for guarded in ["/health", "/api/users", "/admin/stats"] {
        assert!(
            !err.contains(&format!(" {guarded} ")),
            "{guarded} is not unguarded: {err}"
        );
    }
    let clean: Router = Router::new().route("/health", get(health));
    assert!(clean.report().deny_unguarded().is_ok());
}

#[test]
fn json_validates_against_the_published_schema() {
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../docs/policy-report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let json: serde_json::Value = serde_json::from_str(&app().report().render(Format::Json)).unwrap();
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(json["routes"][3]["status"], "unguarded");
    assert_eq!(json["routes"][1]["requirements"][0]["match"], "any");
    assert_eq!(
        json["routes"][2]["requirements"][0]["applies_to"],
        serde_json::json!(["api_key"])
    );

    // Every kind of requirement is in the schema.
    let every_kind = Policy::accepting(TokenTypes::ANY)
        .require(Requirement::new(RequirementKind::Feature, Match::All, ["o:exports"]).unwrap())
        .require(Requirement::new(RequirementKind::Plan, Match::Any, ["pro", "u:pro"]).unwrap())
        .require(Requirement::new(RequirementKind::Reverification, Match::All, ["second_factor:30"]).unwrap())
        .require(Requirement::new(RequirementKind::Acr, Match::Any, ["mfa"]).unwrap())
        .require(Requirement::new(RequirementKind::MaxAge, Match::All, ["600"]).unwrap());
    let stepped: Router = Router::new()
        .route("/payouts", post(stats))
        .guard(PolicyLayer::new(gate(), every_kind));
    let report = stepped.report();
    let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let kinds: Vec<&str> = json["routes"][0]["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["feature", "plan", "reverification", "acr", "max_age"]);
    let markdown = report.render(Format::Markdown);
    assert!(
        markdown.contains("reverification `second_factor` within 30 minutes (for session_token); acr `mfa` (for oauth_token); authentication at most 600 s old (for oauth_token)"),
        "{markdown}"
    );

    // The schema is not a rubber stamp: a wrong status fails it.
    let mut broken = json.clone();
    broken["routes"][0]["status"] = "open".into();
    assert!(!validator.is_valid(&broken));
}

#[test]
fn markdown_table_lists_every_route() {
    let md = app().report().render(Format::Markdown);
    assert!(md.contains("| GET | `/health` | public | — | — |"), "{md}");
    assert!(md.contains("| GET | `/api/forgotten` | **unguarded** |"), "{md}");
    assert!(
        md.contains("| POST | `/api/users` | guarded | `session_token`, `oauth_token`, `api_key` | scope `write:users` (for api_key) |"),
        "{md}"
    );
    assert!(md.contains("scope `read:users` or `admin` (for api_key)"), "{md}");
    assert_eq!(md.lines().count(), 2 + 6);
}

#[test]
fn openapi_fragment_has_schemes_and_per_operation_security() {
    let doc = app().report().openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    for t in ["session_token", "oauth_token", "api_key", "m2m_token"] {
        assert_eq!(doc["components"]["securitySchemes"][t]["scheme"], "bearer", "{t}");
    }
    let post = &doc["paths"]["/api/users"]["post"];
    assert_eq!(
        post["security"],
        serde_json::json!([{"session_token": []}, {"oauth_token": []}, {"api_key": ["write:users"]}])
    );
    // any-of becomes alternatives.
    let list = &doc["paths"]["/api/users"]["get"];
    assert_eq!(
        list["security"],
        serde_json::json!([{"api_key": ["read:users"]}, {"api_key": ["admin"]}])
    );
    // The admin group's scope adds to the handler's.
    let admin = &doc["paths"]["/admin/users"]["post"];
    assert_eq!(
        admin["security"],
        serde_json::json!([{"api_key": ["admin", "write:users"]}])
    );
    assert_eq!(doc["paths"]["/health"]["get"]["security"], serde_json::json!([{}]));
    assert_eq!(doc["paths"]["/api/forgotten"]["get"]["x-tokengate-unguarded"], true);
}

#[test]
fn start_up_check_names_routes_without_verifiers() {
    let only_keys = TokenGate::builder()
        .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
        .build()
        .unwrap();
    let err = app().check_verifiers(&only_keys).unwrap_err().to_string();
    assert!(err.contains("no verifier for session_token, which "), "{err}");
    assert!(err.contains("no verifier for oauth_token, which "), "{err}");
    assert!(err.contains("POST /api/users"), "{err}");
    assert!(
        err.contains("no verifier for m2m_token, which 2 routes accept: GET /admin/stats, POST /admin/users"),
        "{err}"
    );
    assert!(err.contains(".verifier(TokenType::SessionToken, …)"), "{err}");
    // One mention of each type, however many routes accept it.
    assert_eq!(err.matches("no verifier for oauth_token").count(), 1, "{err}");
    assert!(app().check_verifiers(&gate()).is_ok());
}

#[tokio::test]
async fn the_recorded_router_serves_requests() {
    use tower::ServiceExt as _;
    let router: axum::Router = app().into_axum();
    let response = router
        .oneshot(
            http::Request::get("/api/forgotten")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
