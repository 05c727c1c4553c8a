use tokengate::{accepts_token, require_scope};

// `#[require_scope]` expands first here; it reads `#[accepts_token]` below it.
#[require_scope("write:users")]
#[accepts_token(session_token, api_key)]
async fn scope_first() {}

// Errors in attributes below the expanding one are reported too.
#[accepts_token(api_key)]
#[require_scope("ok:scope")]
#[require_scope("bad scope")]
async fn error_below() {}

fn main() {
    let _ = (scope_first, error_below);
}
