use tokengate::{accepts_token, require_scope};

#[accepts_token(api_key)]
#[require_scope("read users", "say\"hi\"", "back\\slash", "tab\there", "café")]
async fn bad_scopes() {}

#[accepts_token(api_key)]
#[require_scope("read:users", "read:users")]
async fn duplicate_scope() {}

fn main() {
    let _ = (bad_scopes, duplicate_scope);
}
