use tokengate::{accepts_token, require_permission, require_role};

#[require_role("admin")]
async fn role_without_org() {}

#[require_permission("org:invoices", "invoices:create:now")]
async fn malformed_permissions() {}

// Machine tokens carry no roles or permissions.
#[accepts_token(api_key, m2m_token)]
#[require_role("org:admin")]
#[require_permission(any("org:invoices:create"))]
async fn no_sessions() {}

#[accepts_token(session_token, api_key)]
#[require_role(api_key: "org:admin")]
async fn role_with_limit() {}

fn main() {
    let _ = (role_without_org, malformed_permissions, no_sessions, role_with_limit);
}
