use tokengate::{accepts_token, require_scope};

#[accepts_token(session_token, api_key)]
#[require_scope(oauth_token: "write:users")]
async fn not_accepted() {}

#[accepts_token(api_key)]
#[require_scope(api_key | m2m_token | api_kye: "write:users")]
async fn partly_not_accepted() {}

fn main() {
    let _ = (not_accepted, partly_not_accepted);
}
