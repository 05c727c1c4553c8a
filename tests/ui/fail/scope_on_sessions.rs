use tokengate::{accepts_token, require_scope};

// Sessions carry no scopes: every session would be refused.
#[accepts_token(session_token, api_key, m2m_token)]
#[require_scope("write:users")]
async fn sessions_too() {}

#[accepts_token(any)]
#[require_scope(any("read:users", "admin"))]
async fn any_type() {}

#[accepts_token(session_token)]
#[require_scope("write:users")]
async fn only_sessions() {}

// A limit that names session tokens.
#[accepts_token(session_token, api_key)]
#[require_scope(session_token | api_key: "write:users")]
async fn limited_to_sessions() {}

fn main() {
    let _ = (sessions_too, any_type, only_sessions, limited_to_sessions);
}
