use tokengate::{accepts_token, policy, require_dpop, require_mtls};

// API keys and session tokens cannot be bound to a key or a certificate.
#[accepts_token(api_key, session_token)]
#[require_dpop]
async fn keys_and_sessions() {}

// Without `#[accepts_token]`: session tokens only.
#[require_mtls]
async fn sessions_only() {}

#[accepts_token(oauth_token)]
#[require_dpop(strict)]
async fn with_arguments() {}

#[accepts_token(oauth_token)]
#[require_dpop]
#[require_dpop]
async fn twice() {}

fn main() {
    let _ = (keys_and_sessions, sessions_only, with_arguments, twice);
    let _ = policy!(accepts_token(api_key), require_mtls);
}
