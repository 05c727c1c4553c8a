use tokengate::{accepts_token, require_acr};

// Without `#[accepts_token]`: session tokens only, which carry no `acr`.
#[require_acr("mfa")]
async fn sessions_only() {}

#[accepts_token(oauth_token)]
#[require_acr("mfa", "phr")]
async fn all_of_two() {}

#[accepts_token(oauth_token)]
#[require_acr("m fa", max_age = 0)]
async fn malformed() {}

#[accepts_token(oauth_token)]
#[require_acr(max_age = -60, maxage = 5)]
async fn negative_age() {}

#[accepts_token(oauth_token)]
#[require_acr()]
async fn empty() {}

#[accepts_token(session_token, oauth_token)]
#[require_acr(oauth_token: "mfa")]
async fn with_limit() {}

fn main() {
    let _ = (sessions_only, all_of_two, malformed, negative_age, empty, with_limit);
}
