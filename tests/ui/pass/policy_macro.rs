//! `policy!` builds a `Policy` value for a group layer, in an expression or a `static`.
#![deny(warnings)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokengate::{Policy, PolicyLayer, TokenGate, TokenType, TokenTypes, policy, verifier::StaticVerifier};

static ADMIN: Policy = policy!(accepts_token(api_key, m2m_token), require_scope("admin"));

fn main() {
    let gate = TokenGate::builder()
        .verifier(TokenType::ApiKey, Arc::new(StaticVerifier::new()))
        .build()
        .unwrap();
    let sessions: Policy = policy!();
    assert_eq!(sessions.accepts(), TokenTypes::DEFAULT);
    let mixed = policy!(
        accepts_token(session_token, api_key),
        require_scope(api_key: any("reports:read", "admin")),
        require_role("org:admin"),
        require_permission("org:reports:read"),
    );
    assert_eq!(mixed.requirements().len(), 3);
    assert_eq!(ADMIN.accepts(), TokenTypes::EMPTY.with(TokenType::ApiKey).with(TokenType::M2mToken));
    let _router: Router = Router::new()
        .route("/stats", get(|| async { "ok" }))
        .layer(PolicyLayer::new(gate.clone(), ADMIN.clone()))
        .layer(PolicyLayer::new(gate, mixed));
}
