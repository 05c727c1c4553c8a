//! `#[require_role]` and `#[require_permission]`: session tokens, all-of and any-of.
#![deny(warnings)]

use axum::Router;
use axum::routing::get;
use tokengate::{TokenGate, accepts_token, require_permission, require_role, require_scope};

// Without `#[accepts_token]`: Clerk's default, session tokens only.
#[require_role("org:admin")]
async fn admins() {}

#[require_role(any("org:admin", "org:billing"))]
async fn admins_or_billing() {}

#[require_permission("org:invoices:create", "org:invoices:read")]
async fn invoices() {}

#[require_permission(any("org:invoices:create", "org:invoices:manage"))]
async fn invoices_any() {}

// Sessions need the role; API keys are governed by their scope.
#[accepts_token(session_token, api_key)]
#[require_role("org:admin")]
#[require_permission(all("org:reports:read"))]
#[require_scope(api_key: "reports:read")]
async fn reports() {}

fn main() {
    let _router: Router<TokenGate> = Router::new()
        .route("/admins", get(admins))
        .route("/admins-or-billing", get(admins_or_billing))
        .route("/invoices", get(invoices))
        .route("/invoices-any", get(invoices_any))
        .route("/reports", get(reports));
}
