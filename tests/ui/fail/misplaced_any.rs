use tokengate::{accepts_token, require_scope};

#[accepts_token(api_key)]
#[require_scope(any("read:users"), "admin")]
async fn any_with_more() {}

#[accepts_token(api_key)]
#[require_scope(any("read:users", all("a", "b")))]
async fn nested() {}

#[accepts_token(session_token, api_key)]
#[require_scope("read:users", api_key: "admin")]
async fn limit_not_first() {}

#[accepts_token(api_key)]
#[require_scope(any["read:users", "admin"])]
async fn brackets() {}

fn main() {
    let _ = (any_with_more, nested, limit_not_first, brackets);
}
