use tokengate::{Auth, accepts_token, policy, rate_limit, require_scope};

#[accepts_token(api_key, oauth_token)]
#[rate_limit("100/min")]
#[rate_limit(api_key: "10/s", per = subject)]
#[require_scope(api_key: "read")]
async fn search(_auth: Auth) -> &'static str {
    "ok"
}

#[accepts_token(api_key)]
#[rate_limit("5000/hour", per = key)]
async fn export() {}

fn main() {
    let _ = (search, export);
    let _ = policy!(accepts_token(api_key), rate_limit("1/s"));
}
