//! The Backend API double against the excerpted OpenAPI spec: its answers validate against the
//! spec's response schemas, it refuses requests the spec does not allow, and the session-token
//! seam (`GET {api}/v1/jwks` with the secret key) matches the JWKS schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod clerk_support;

use clerk_support::*;
use serde_json::{Value, json};
use tokengate_runtime::TokenType;
use tokengate_runtime::clerk::SessionKeys;

const TYPES: [TokenType; 3] = [TokenType::ApiKey, TokenType::M2mToken, TokenType::OAuthToken];

fn body_field(t: TokenType) -> &'static str {
    match t {
        TokenType::ApiKey => "secret",
        TokenType::M2mToken => "token",
        _ => "access_token",
    }
}

async fn post(double: &Double, path: &str, auth: Option<&str>, version: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", double.url)).json(body);
    if let Some(auth) = auth {
        request = request.bearer_auth(auth);
    }
    if let Some(version) = version {
        request = request.header("Clerk-API-Version", version);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_doubles_answers_validate_against_the_spec() {
    let spec = Spec::load();
    let double = Double::start().await;
    let exp = Some(now_ms() + 3_600_000);
    for t in TYPES {
        let path = path_of(t);
        let ok = Spec::validator(&spec.response_schema(path, "post", "200"));
        let not_found = Spec::validator(&spec.response_schema(path, "post", "404"));
        let cases = [
            (Reply::Resource(resource(t, exp)), 200),
            (Reply::Resource(resource(t, None)), 200),
            (Reply::Resource(revoked(resource(t, exp))), 200),
            (Reply::Resource(expired(resource(t, Some(now_ms() - 1000)))), 200),
            (Reply::NotFound, 404),
        ];
        for (reply, expected) in cases {
            let token = double.token(t, reply);
            let (status, body) = post(
                &double,
                path,
                Some(SECRET),
                Some(VERSION),
                &json!({body_field(t): token}),
            )
            .await;
            assert_eq!(status, expected, "{t}");
            let validator = if status == 200 { &ok } else { &not_found };
            let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{t} {status}: {errors:?}\n{body}");
        }
    }
    let token = double.token(TokenType::OAuthToken, Reply::Inactive);
    let (status, body) = post(
        &double,
        OAUTH,
        Some(SECRET),
        Some(VERSION),
        &json!({"access_token": token}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(Spec::validator(&spec.response_schema(OAUTH, "post", "200")).is_valid(&body));
    double.assert_no_violations();
}

#[test]
fn the_schemas_refuse_what_the_spec_refuses() {
    // The validation above can fail: broken resources do not pass.
    let spec = Spec::load();
    for t in TYPES {
        let validator = Spec::validator(&spec.response_schema(path_of(t), "post", "200"));
        let good = resource(t, Some(now_ms()));
        assert!(validator.is_valid(&good), "{t}");
        let mut missing_id = good.clone();
        missing_id.as_object_mut().unwrap().remove("id");
        assert!(!validator.is_valid(&missing_id), "{t}");
        let mut bad_subject = good.clone();
        bad_subject["subject"] = json!("someone");
        assert!(!validator.is_valid(&bad_subject), "{t}");
        let mut extra = good.clone();
        extra["surprise"] = json!(1);
        assert!(!validator.is_valid(&extra), "{t}");
        let mut string_expiration = good;
        string_expiration["expiration"] = json!("tomorrow");
        assert!(!validator.is_valid(&string_expiration), "{t}");
    }
    let oauth = Spec::validator(&spec.response_schema(OAUTH, "post", "200"));
    assert!(!oauth.is_valid(&json!({"active": true})));
    let request = Spec::validator(&spec.request_schema(API_KEYS));
    assert!(request.is_valid(&json!({"secret": "ak_x"})));
    assert!(!request.is_valid(&json!({"token": "ak_x"})));
    assert!(!request.is_valid(&json!({"secret": "ak_x", "extra": 1})));
}

#[tokio::test]
async fn the_double_refuses_requests_off_the_spec() {
    let double = Double::start().await;
    let token = double.token(TokenType::ApiKey, Reply::Resource(resource(TokenType::ApiKey, None)));
    let body = json!({"secret": token});
    assert_eq!(post(&double, API_KEYS, Some(SECRET), Some(VERSION), &body).await.0, 200);
    assert_eq!(
        post(&double, API_KEYS, Some(WRONG_SECRET), Some(VERSION), &body)
            .await
            .0,
        401
    );
    assert!(double.violations().is_empty());
    assert_eq!(post(&double, API_KEYS, None, Some(VERSION), &body).await.0, 400);
    assert_eq!(post(&double, API_KEYS, Some(SECRET), None, &body).await.0, 400);
    let extra = json!({"secret": token, "scopes": []});
    assert_eq!(
        post(&double, API_KEYS, Some(SECRET), Some(VERSION), &extra).await.0,
        400
    );
    assert_eq!(
        post(&double, "/v1/api_keys/verify", Some(SECRET), Some(VERSION), &body)
            .await
            .0,
        404
    );
    assert_eq!(double.violations().len(), 4, "{:#?}", double.violations());
}

#[tokio::test]
async fn the_session_seam_fetches_the_jwks_with_the_secret_key() {
    let spec = Spec::load();
    let double = Double::start().await;
    let config = double.config();
    let SessionKeys::Jwks { url, headers } = config.session_keys().unwrap() else {
        panic!("no CLERK_JWT_KEY: the keys come from the API");
    };
    assert_eq!(url, format!("{}/v1/jwks", double.url));
    let response = reqwest::Client::new().get(&url).headers(headers).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let schema = spec.response_schema("/jwks", "get", "200");
    let errors = Spec::errors(&schema, &body);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!Spec::validator(&schema).is_valid(&json!({"keys": [{"kty": "RSA"}]})));
    // The wrong secret key is refused, and a PEM key means no call at all.
    let wrong = tokengate_runtime::clerk::ClerkConfig::new(WRONG_SECRET).unwrap();
    let response = reqwest::Client::new()
        .get(&url)
        .headers(wrong.jwks_headers().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let pem = config.with_jwt_key("-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----");
    assert!(matches!(pem.session_keys().unwrap(), SessionKeys::Pem(k) if k.starts_with("-----BEGIN")));
    double.assert_no_violations();
}
