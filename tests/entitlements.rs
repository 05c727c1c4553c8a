//! Clerk Billing features and plans, reverification, and RFC 9470 step-up through a real router:
//! RS256 session tokens with `fea`, `pla` and `fva` claims and RFC 9068 OAuth access tokens with
//! `acr` and `auth_time`, verified by `JwtVerifier` with a key generated for the test; every
//! refusal's status, body and challenge; the attributes and `policy!` in a group layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Reply, now, oauth_claims, oauth_token, oauth_verifier, session_verifier, session_with};
use tokengate::verifier::StaticVerifier;
use tokengate::{
    Auth, AuthInfo, PolicyLayer, TokenGate, TokenType, accepts_token, policy, require_acr, require_feature,
    require_plan, require_reverification,
};

#[require_feature("exports")]
async fn exports(auth: Auth) -> String {
    auth.user_id.as_deref().unwrap_or_default().to_owned()
}

#[require_plan("o:pro")]
async fn analytics() -> &'static str {
    "ok"
}

#[require_plan(any("u:pro", "o:enterprise"))]
async fn any_plan() -> &'static str {
    "ok"
}

#[require_reverification(strict)]
async fn delete_account() -> &'static str {
    "deleted"
}

#[require_reverification(level = first_factor, after_minutes = 30)]
async fn change_email() -> &'static str {
    "changed"
}

/// Features apply to sessions only: any valid API key passes.
#[accepts_token(session_token, api_key)]
#[require_feature("exports")]
async fn mixed(auth: Auth) -> String {
    auth.token_type.to_string()
}

#[accepts_token(session_token, oauth_token)]
#[require_reverification(strict_mfa)]
#[require_acr("mfa", max_age = 600)]
async fn payouts(auth: Auth) -> String {
    auth.token_type.to_string()
}

#[accepts_token(oauth_token)]
#[require_acr(any("mfa", "phr"))]
async fn any_acr() -> &'static str {
    "ok"
}

const API_KEY: &str = "ak_plain_0123456789";

fn router() -> Router {
    let mut key = AuthInfo::new(TokenType::ApiKey);
    key.subject = Some("user_key".into());
    let gate = TokenGate::builder()
        .verifier(TokenType::SessionToken, Arc::new(session_verifier()))
        .verifier(TokenType::OAuthToken, Arc::new(oauth_verifier()))
        .verifier(
            TokenType::ApiKey,
            Arc::new(StaticVerifier::new().with_token(API_KEY, key)),
        )
        .build()
        .unwrap();
    let group = Router::new()
        .route("/group/reports", get(|| async { "reports" }))
        .layer(PolicyLayer::new(
            gate.clone(),
            policy!(require_feature("o:reports"), require_reverification(moderate)),
        ));
    Router::new()
        .route("/exports", get(exports))
        .route("/analytics", get(analytics))
        .route("/any-plan", get(any_plan))
        .route("/account", axum::routing::delete(delete_account))
        .route("/email", get(change_email))
        .route("/mixed", get(mixed))
        .route("/payouts", post(payouts))
        .route("/any-acr", get(any_acr))
        .with_state(gate)
        .merge(group)
}

async fn call(router: &Router, method: Method, uri: &str, token: &str) -> Reply {
    support::send(router, method, uri, Some(token)).await
}

fn assert_forbidden(reply: &Reply, reason: &str, field: &str, missing: Value) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(reply.reason(), reason, "{}", reply.text);
    assert_eq!(reply.json()[field], missing, "{}", reply.text);
    let challenge = reply.challenge.as_deref().unwrap_or_default();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
}

/// Clerk's reverification body, exactly: nothing else in it.
fn assert_reverification(reply: &Reply, metadata: Value) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"clerk_error":{"type":"forbidden","reason":"reverification-error","metadata":{"reverification":metadata}}}),
    );
}

#[tokio::test]
async fn features_are_read_from_fea_with_clerks_scopes() {
    let r = router();
    for fea in ["o:exports", "u:exports", "ou:exports", "u:profile, o:exports"] {
        let ok = call(
            &r,
            Method::GET,
            "/exports",
            &session_with("user_1", json!({"fea": fea})),
        )
        .await;
        assert_eq!((ok.status, ok.text.as_str()), (StatusCode::OK, "user_1"), "{fea}");
    }
    for fea in [
        json!("o:reports"),
        json!("x:exports"),
        json!("o:exports,broken"),
        json!(["o:exports"]),
        json!(7),
        json!(""),
    ] {
        let refused = call(
            &r,
            Method::GET,
            "/exports",
            &session_with("user_1", json!({"fea": fea})),
        )
        .await;
        assert_forbidden(&refused, "missing-feature", "missing_features", json!(["exports"]));
        assert!(
            refused.json()["message"].as_str().unwrap().contains("`exports`"),
            "{}",
            refused.text
        );
    }
    let none = call(&r, Method::GET, "/exports", &session_with("user_1", json!({}))).await;
    assert_forbidden(&none, "missing-feature", "required_features", json!(["exports"]));
}

#[tokio::test]
async fn plans_are_read_from_pla_and_a_scope_narrows_them() {
    let r = router();
    let ok = call(
        &r,
        Method::GET,
        "/analytics",
        &session_with("user_1", json!({"pla": "o:pro"})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let user_plan = call(
        &r,
        Method::GET,
        "/analytics",
        &session_with("user_1", json!({"pla": "u:pro"})),
    )
    .await;
    assert_forbidden(&user_plan, "missing-plan", "missing_plans", json!(["o:pro"]));
    let feature_not_plan = call(
        &r,
        Method::GET,
        "/analytics",
        &session_with("user_1", json!({"fea": "o:pro"})),
    )
    .await;
    assert_forbidden(&feature_not_plan, "missing-plan", "missing_plans", json!(["o:pro"]));
    let any = call(
        &r,
        Method::GET,
        "/any-plan",
        &session_with("user_1", json!({"pla": "u:pro"})),
    )
    .await;
    assert_eq!(any.status, StatusCode::OK);
    let neither = call(
        &r,
        Method::GET,
        "/any-plan",
        &session_with("user_1", json!({"pla": "o:pro"})),
    )
    .await;
    assert_forbidden(
        &neither,
        "missing-plan",
        "missing_plans",
        json!(["u:pro", "o:enterprise"]),
    );
}

#[tokio::test]
async fn reverification_refusals_are_clerks_body() {
    let r = router();
    let fresh = call(
        &r,
        Method::DELETE,
        "/account",
        &session_with("user_1", json!({"fva": [0, 5]})),
    )
    .await;
    assert_eq!((fresh.status, fresh.text.as_str()), (StatusCode::OK, "deleted"));
    let no_second = call(
        &r,
        Method::DELETE,
        "/account",
        &session_with("user_1", json!({"fva": [3, -1]})),
    )
    .await;
    assert_eq!(
        no_second.status,
        StatusCode::OK,
        "without a second factor the first counts"
    );
    for fva in [
        json!([0, 10]),
        json!([-1, -1]),
        json!([0, "5"]),
        json!("0,5"),
        json!([0]),
        Value::Null,
    ] {
        let stale = call(
            &r,
            Method::DELETE,
            "/account",
            &session_with("user_1", json!({"fva": fva})),
        )
        .await;
        assert_reverification(&stale, json!("strict"));
        let challenge = stale.challenge.as_deref().unwrap_or_default();
        assert!(
            challenge.contains("error_description=\"reverification-error\""),
            "{challenge}"
        );
    }
    let old = call(
        &r,
        Method::GET,
        "/email",
        &session_with("user_1", json!({"fva": [45, 1]})),
    )
    .await;
    assert_reverification(&old, json!({"level": "first_factor", "afterMinutes": 30}));
    let recent = call(
        &r,
        Method::GET,
        "/email",
        &session_with("user_1", json!({"fva": [29, -1]})),
    )
    .await;
    assert_eq!(recent.status, StatusCode::OK);
}

#[tokio::test]
async fn session_requirements_leave_machine_tokens_to_their_scopes() {
    let r = router();
    let key = call(&r, Method::GET, "/mixed", API_KEY).await;
    assert_eq!((key.status, key.text.as_str()), (StatusCode::OK, "api_key"));
    let session = call(&r, Method::GET, "/mixed", &session_with("user_1", json!({}))).await;
    assert_forbidden(&session, "missing-feature", "missing_features", json!(["exports"]));
}

#[tokio::test]
async fn step_up_refusals_carry_the_rfc_9470_challenge() {
    let r = router();
    let good = oauth_token(&oauth_claims("user_1", json!({"acr": "mfa", "auth_time": now() - 30})));
    let ok = call(&r, Method::POST, "/payouts", &good).await;
    assert_eq!((ok.status, ok.text.as_str()), (StatusCode::OK, "oauth_token"));

    let password = oauth_token(&oauth_claims("user_1", json!({"acr": "pwd", "auth_time": now() - 30})));
    let refused = call(&r, Method::POST, "/payouts", &password).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(
        refused.challenge.as_deref(),
        Some(
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"a different authentication level is required\", acr_values=\"mfa\", max_age=600"
        )
    );
    assert_eq!(refused.reason(), "insufficient-user-authentication");
    assert_eq!(
        (refused.json()["acr_values"].clone(), refused.json()["max_age"].clone()),
        (json!(["mfa"]), json!(600))
    );

    for stale in [json!({"acr": "mfa", "auth_time": now() - 601}), json!({"acr": "mfa"})] {
        let stale = oauth_token(&oauth_claims("user_1", stale));
        let refused = call(&r, Method::POST, "/payouts", &stale).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
        let challenge = refused.challenge.unwrap();
        assert!(
            challenge.contains("error_description=\"more recent authentication is required\""),
            "{challenge}"
        );
        assert!(challenge.ends_with("acr_values=\"mfa\", max_age=600"), "{challenge}");
    }
    let any = oauth_token(&oauth_claims("user_1", json!({"acr": "phr"})));
    assert_eq!(call(&r, Method::GET, "/any-acr", &any).await.status, StatusCode::OK);
    let none = oauth_token(&oauth_claims("user_1", json!({})));
    let refused = call(&r, Method::GET, "/any-acr", &none).await;
    assert!(refused.challenge.unwrap().ends_with("acr_values=\"mfa phr\""));
}

#[tokio::test]
async fn sessions_on_a_step_up_route_need_the_reverification() {
    let r = router();
    let both = call(
        &r,
        Method::POST,
        "/payouts",
        &session_with("user_1", json!({"fva": [1, 2]})),
    )
    .await;
    assert_eq!((both.status, both.text.as_str()), (StatusCode::OK, "session_token"));
    let first_only = call(
        &r,
        Method::POST,
        "/payouts",
        &session_with("user_1", json!({"fva": [1, -1]})),
    )
    .await;
    assert_eq!(first_only.status, StatusCode::OK, "a user without a second factor");
    let stale = call(
        &r,
        Method::POST,
        "/payouts",
        &session_with("user_1", json!({"fva": [20, 2]})),
    )
    .await;
    assert_reverification(&stale, json!("strict_mfa"));
}

#[tokio::test]
async fn policy_layers_take_them() {
    let r = router();
    let ok = session_with("user_1", json!({"fea": "o:reports", "fva": [30, -1]}));
    assert_eq!(
        call(&r, Method::GET, "/group/reports", &ok).await.status,
        StatusCode::OK
    );
    let no_feature = session_with("user_1", json!({"fva": [30, -1]}));
    let refused = call(&r, Method::GET, "/group/reports", &no_feature).await;
    assert_forbidden(&refused, "missing-feature", "missing_features", json!(["o:reports"]));
    let stale = session_with("user_1", json!({"fea": "o:reports", "fva": [61, -1]}));
    assert_reverification(
        &call(&r, Method::GET, "/group/reports", &stale).await,
        json!("moderate"),
    );
}
