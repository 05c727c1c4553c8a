use tokengate::require_scope;

// Without #[accepts_token] the route accepts Clerk's default, session tokens only.
#[require_scope("write:users")]
async fn create_user() {}

fn main() {
    let _ = create_user;
}
