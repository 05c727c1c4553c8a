use tokengate::{accepts_token, require_scope};

#[accepts_token(api_key)]
#[require_scope("read:users")]
struct NotAHandler;

fn main() {
    let _ = NotAHandler;
}
