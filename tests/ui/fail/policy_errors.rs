use tokengate::{Policy, policy};

fn main() {
    let _a: Policy = policy!(accepts_token(api_kye));
    let _b: Policy = policy!(accepts_token(session_token, api_key), require_scope("admin"));
    let _c: Policy = policy!(accepts_token(api_key), requires_scope("admin"));
    let _d: Policy = policy!(public);
    let _e: Policy = policy!(accepts_token(api_key), require_role("org:admin"));
}
