//! The utoipa and aide examples' documents: valid OpenAPI 3.1 (checked against the official
//! 3.1 schema, vendored in `tests/data/openapi-3.1.schema.json`), with the four bearer schemes
//! and the right security per operation, computed from the policies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, dead_code)]

#[path = "../examples/openapi_utoipa.rs"]
mod utoipa_example;

#[path = "../examples/openapi_aide.rs"]
mod aide_example;

use serde_json::{Value, json};

/// Validates `doc` against the OpenAPI 3.1 schema; every error, with its path.
fn assert_valid_openapi_31(doc: &Value) {
    let schema: Value = serde_json::from_str(include_str!("data/openapi-3.1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1:\n{}\n{doc:#}", errors.join("\n"));
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
}

fn assert_schemes(doc: &Value) {
    let schemes = &doc["components"]["securitySchemes"];
    for name in ["session_token", "oauth_token", "api_key", "m2m_token"] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
}

/// What both documents say about the guarded operations.
fn assert_guarded_security(doc: &Value) {
    let every_type = json!([
        {"session_token": []}, {"oauth_token": []}, {"api_key": []}, {"m2m_token": []}
    ]);
    assert_eq!(doc["paths"]["/api/me"]["get"]["security"], every_type);
    // Optional: the accepted types, or no credential at all.
    assert_eq!(
        doc["paths"]["/api/feed"]["get"]["security"],
        json!([{"session_token": []}, {"api_key": []}, {}])
    );
    // The API-key scope is any of two: one alternative each, in the order written; sessions
    // need none.
    assert_eq!(
        doc["paths"]["/api/reports"]["post"]["security"],
        json!([{"session_token": []}, {"api_key": ["reports:write"]}, {"api_key": ["admin"]}])
    );
}

#[test]
fn utoipa_document_is_openapi_31_with_the_security_of_each_operation() {
    let doc = serde_json::to_value(utoipa_example::document()).unwrap();
    assert_valid_openapi_31(&doc);
    assert_schemes(&doc);
    assert_guarded_security(&doc);
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        json!([]),
        "#[public]: security []"
    );
}

#[test]
fn aide_document_is_openapi_31_with_the_security_of_each_operation() {
    let (_router, api) = aide_example::app();
    let doc = serde_json::to_value(&api).unwrap();
    assert_valid_openapi_31(&doc);
    assert_schemes(&doc);
    assert_guarded_security(&doc);
    // A public handler's `Public` marker writes `security: []`, once, in the serialized text
    // (the only empty requirement list of the document).
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]), "{doc:#}");
    let text = serde_json::to_string(&api).unwrap();
    assert_eq!(text.matches(r#""security":[]"#).count(), 1, "{text}");
}

#[test]
fn aide_public_operation_overrides_a_top_level_requirement() {
    // With a global requirement, the public operation still says "no credential needed".
    let (_router, mut api) = aide_example::app();
    api.security = vec![[("api_key".to_owned(), Vec::new())].into_iter().collect()];
    let doc = serde_json::to_value(&api).unwrap();
    assert_valid_openapi_31(&doc);
    assert_eq!(doc["security"], json!([{"api_key": []}]));
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
    assert_eq!(doc["paths"]["/api/me"]["get"]["security"][2], json!({"api_key": []}));
}

#[tokio::test]
async fn a_public_handler_called_directly_takes_the_marker() {
    assert_eq!(aide_example::health(tokengate::Public).await, "ok");
}

#[test]
fn a_document_that_breaks_the_schema_is_refused() {
    // The check can fail: a security requirement that is not an object.
    let mut doc = serde_json::to_value(utoipa_example::document()).unwrap();
    doc["paths"]["/api/me"]["get"]["security"] = json!(["api_key"]);
    let schema: Value = serde_json::from_str(include_str!("data/openapi-3.1.schema.json")).unwrap();
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&doc));
}
