use tokengate::{accepts_token, public, require_scope};

#[public]
#[accepts_token(api_key)]
async fn public_and_guarded() {}

#[accepts_token(api_key)]
#[require_scope("read:users")]
#[tokengate::public]
async fn guarded_then_public() {}

#[public]
#[public]
async fn public_twice() {}

#[public(true)]
async fn public_with_args() {}

fn main() {
    let _ = (public_and_guarded, guarded_then_public, public_twice, public_with_args);
}
