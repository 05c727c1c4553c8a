use tokengate::{accepts_token, require_scope};

#[accepts_token(api_key)]
#[require_scope("")]
async fn empty_string() {}

#[accepts_token(api_key)]
#[require_scope()]
async fn no_scope() {}

#[accepts_token(api_key)]
#[require_scope(any())]
async fn empty_any() {}

fn main() {
    let _ = (empty_string, no_scope, empty_any);
}
