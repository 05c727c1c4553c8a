use tokengate::{Policy, policy};

fn main() {
    // Conditions are per handler: a group layer cannot take them.
    let _p: Policy = policy!(accepts_token(api_key), require(is_owner));
}
