//! Optional authentication and typed callers through a real router, with `tokengate::testing`:
//! real RSA signatures, API keys and `mt_` tokens from an in-memory store, no network.
//!
//! An optional route serves a request without credentials anonymously, and refuses every
//! credential that is present but bad exactly as a required route does: malformed, forged,
//! expired, revoked, of a type the route does not accept, another scheme, or failing a scope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use serde_json::{Value, json};
use tokengate::caller::{ApiKeyCaller, M2mCaller, OAuthCaller, SessionCaller};
use tokengate::testing::TestGate;
use tokengate::{Auth, Caller, PolicyLayer, accepts_token, policy, require_scope};

/// A public feed that personalises for a signed-in caller.
#[accepts_token(optional, session_token, api_key)]
async fn feed(caller: Option<Caller>) -> axum::Json<Value> {
    let user = match caller {
        None => return axum::Json(json!({ "personalized": false })),
        Some(Caller::Session(s)) => Some(s.user_id),
        Some(Caller::ApiKey(k)) => k.user_id,
    };
    axum::Json(json!({ "personalized": true, "userId": user }))
}

/// Optional, with a scope for API keys: a key without it is refused, not served anonymously.
#[accepts_token(optional, api_key)]
#[require_scope("feed:read")]
async fn scoped(auth: Option<Auth>) -> String {
    auth.map_or("anonymous".to_owned(), |a| {
        a.subject.as_deref().unwrap_or_default().to_owned()
    })
}

#[accepts_token(any)]
async fn who(caller: Caller) -> String {
    match caller {
        Caller::Session(s) => format!("session {} {:?}", s.user_id, s.org.map(|o| o.id)),
        Caller::OAuth(o) => format!("oauth {} {:?} {:?}", o.subject, o.client_id, o.scopes),
        Caller::ApiKey(k) => format!("api_key {} {:?}", k.subject, k.scopes),
        Caller::M2m(m) => format!("m2m {} {:?}", m.subject, m.scopes),
    }
}

#[accepts_token(session_token)]
async fn session_only(caller: SessionCaller) -> String {
    caller.session_id.unwrap_or_default()
}

#[accepts_token(oauth_token)]
async fn oauth_only(caller: OAuthCaller) -> String {
    caller.subject
}

#[accepts_token(api_key)]
async fn key_only(caller: ApiKeyCaller) -> String {
    caller.id
}

#[accepts_token(m2m_token)]
async fn machine_only(caller: M2mCaller) -> String {
    caller.subject
}

fn router(t: &TestGate) -> Router {
    // A group layer with an optional policy, and a typed view the layer's policy does not
    // guarantee (a session view on a route that also takes API keys): fails closed.
    let group = Router::new()
        .route(
            "/group",
            get(|auth: Option<Auth>| async move { format!("{}", auth.is_some()) }),
        )
        .route("/group/view", get(|c: SessionCaller| async move { c.user_id }))
        .layer(PolicyLayer::new(
            t.gate.clone(),
            policy!(accepts_token(session_token, api_key)).optional(),
        ));
    Router::new()
        .route("/feed", get(feed))
        .route("/scoped", get(scoped))
        .route("/who", get(who))
        .route("/session", get(session_only))
        .route("/oauth", get(oauth_only))
        .route("/key", get(key_only))
        .route("/machine", get(machine_only))
        .with_state(t.gate.clone())
        .merge(group)
}

#[tokio::test]
async fn optional_route_serves_anonymous_and_signed_in_callers() {
    let t = TestGate::new().unwrap();
    let app = router(&t);
    let r = support::get(&app, "/feed", None).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"personalized": false})));

    let session = t.issuer.session("user_1").sign().unwrap();
    let key = t.keys.api_key("user_2", Vec::<String>::new()).await.unwrap();
    for (token, user) in [(session.as_str(), "user_1"), (key.secret.as_str(), "user_2")] {
        let r = support::get(&app, "/feed", Some(token)).await;
        assert_eq!(
            (r.status, r.json()),
            (StatusCode::OK, json!({"personalized": true, "userId": user}))
        );
    }
}

#[tokio::test]
async fn optional_route_never_turns_a_bad_credential_into_anonymous() {
    let t = TestGate::new().unwrap();
    let app = router(&t);
    let session = t.issuer.session("user_1").sign().unwrap();
    let expired = t.issuer.session("user_1").expires_in(-60).sign().unwrap();
    // One signature byte changed (the middle of the signature: the last base64url character
    // carries padding bits).
    let middle = session.len() - 100;
    let flipped = if &session[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &session[..middle], &session[middle + 1..]);
    let other_issuer = t
        .issuer
        .session("user_1")
        .claim("iss", "https://elsewhere.test")
        .sign()
        .unwrap();
    let oauth = t.issuer.oauth("user_1").sign().unwrap();
    let machine = t.keys.m2m_token("mch_1", ["feed:read"]).await.unwrap();
    let revoked = t.keys.api_key("user_3", ["feed:read"]).await.unwrap();
    assert_eq!(
        support::get(&app, "/feed", Some(&revoked.secret)).await.status,
        StatusCode::OK
    );
    t.keys.revoke(&revoked.id).await.unwrap();

    let (bad_request, unauthorized) = (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED);
    for (token, status, reason) in [
        ("not a token!", bad_request, "malformed-authorization-header"),
        ("", bad_request, "missing-bearer-token"),
        ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", unauthorized, ""),
        (tampered.as_str(), unauthorized, "bad-signature"),
        (other_issuer.as_str(), unauthorized, ""),
        (expired.as_str(), unauthorized, "token-expired"),
        (revoked.secret.as_str(), unauthorized, "token-revoked"),
        (oauth.as_str(), unauthorized, "token-type-mismatch"),
        (machine.secret.as_str(), unauthorized, "token-type-mismatch"),
    ] {
        let r = with_authorization(&app, "/feed", &format!("Bearer {token}")).await;
        assert_eq!(r.status, status, "{token:.20}: {}", r.text);
        assert!(
            !r.text.contains("personalized"),
            "{token:.20}: never served as anonymous"
        );
        if !reason.is_empty() {
            assert_eq!(r.reason(), reason, "{}", r.text);
        }
    }
    // Another scheme is a credential this route cannot verify: refused, not anonymous.
    let r = with_authorization(&app, "/feed", "Basic dXNlcjpwYXNz").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // A valid key without the route's scope: 403, not anonymous.
    let unscoped = t.keys.api_key("user_4", Vec::<String>::new()).await.unwrap();
    let r = support::get(&app, "/scoped", Some(&unscoped.secret)).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient-scope"),
        "{}",
        r.text
    );
    assert_eq!(support::get(&app, "/scoped", None).await.text, "anonymous");
    let scoped = t.keys.api_key("user_5", ["feed:read"]).await.unwrap();
    assert_eq!(support::get(&app, "/scoped", Some(&scoped.secret)).await.text, "user_5");
}

#[tokio::test]
async fn an_optional_group_layer_behaves_the_same() {
    let t = TestGate::new().unwrap();
    let app = router(&t);
    assert_eq!(support::get(&app, "/group", None).await.text, "false");
    let session = t.issuer.session("user_1").sign().unwrap();
    assert_eq!(support::get(&app, "/group", Some(&session)).await.text, "true");
    let expired = t.issuer.session("user_1").expires_in(-60).sign().unwrap();
    assert_eq!(
        support::get(&app, "/group", Some(&expired)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A typed view the layer's policy does not guarantee: an API key there fails closed.
    let key = t.keys.api_key("user_2", Vec::<String>::new()).await.unwrap();
    let r = support::get(&app, "/group/view", Some(&key.secret)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text);
    assert_eq!(support::get(&app, "/group/view", Some(&session)).await.text, "user_1");
}

#[tokio::test]
async fn an_optional_layer_with_a_condition_admits_no_anonymous_caller() {
    let t = TestGate::new().unwrap();
    let layer = PolicyLayer::new(t.gate.clone(), policy!(accepts_token(api_key)).optional()).with_condition(
        "has_subject",
        |auth, _parts| {
            let holds = auth.subject.is_some();
            Box::pin(async move { holds })
        },
    );
    let app: Router = Router::new().route("/", get(|| async { "ok" })).layer(layer);
    let r = support::get(&app, "/", None).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "missing-credentials")
    );
    let key = t.keys.api_key("user_1", Vec::<String>::new()).await.unwrap();
    assert_eq!(support::get(&app, "/", Some(&key.secret)).await.text, "ok");
}

#[tokio::test]
async fn typed_callers_of_every_token_type() {
    let t = TestGate::new().unwrap();
    let app = router(&t);
    let session = t.issuer.session("user_1").org("org_1", "org:admin").sign().unwrap();
    let oauth = t.issuer.oauth("user_2").scopes(["read", "write"]).sign().unwrap();
    let m2m_jwt = t.issuer.m2m("mch_1").scopes(["mch_2"]).sign().unwrap();
    let key = t.keys.api_key("user_3", ["reports:read"]).await.unwrap();
    let mt = t.keys.m2m_token("mch_4", ["jobs:run"]).await.unwrap();

    let cases = [
        (&session, "session user_1 Some(\"org_1\")"),
        (&oauth, "oauth user_2 Some(\"client_test\") [\"read\", \"write\"]"),
        (&m2m_jwt, "m2m mch_1 [\"mch_2\"]"),
        (&key.secret, "api_key user_3 [\"reports:read\"]"),
        (&mt.secret, "m2m mch_4 [\"jobs:run\"]"),
    ];
    for (token, expected) in cases {
        let r = support::get(&app, "/who", Some(token)).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, expected));
    }
    assert_eq!(support::get(&app, "/session", Some(&session)).await.text, "sess_user_1");
    assert_eq!(support::get(&app, "/oauth", Some(&oauth)).await.text, "user_2");
    assert_eq!(support::get(&app, "/key", Some(&key.secret)).await.text, key.id);
    assert_eq!(support::get(&app, "/machine", Some(&mt.secret)).await.text, "mch_4");
    assert_eq!(support::get(&app, "/machine", Some(&m2m_jwt)).await.text, "mch_1");
    let r = support::get(&app, "/session", Some(&oauth)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn with_authorization(app: &Router, uri: &str, value: &str) -> support::Reply {
    use tower::ServiceExt as _;
    let request = http::Request::get(uri)
        .header(http::header::AUTHORIZATION, value)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    support::Reply {
        status,
        challenge: None,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}
