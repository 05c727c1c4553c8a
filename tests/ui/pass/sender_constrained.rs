use tokengate::{Auth, PolicySource, TokenType, accepts_token, policy, require_dpop, require_mtls, require_scope};

#[accepts_token(oauth_token)]
#[require_dpop]
async fn transfers(_auth: Auth) {}

// Both bindings, in any order with the other attributes; API keys on the same route stay
// unbound (they cannot be bound).
#[require_mtls]
#[accepts_token(oauth_token, m2m_token, api_key)]
#[require_dpop]
#[require_scope("pay")]
async fn settlements() {}

#[accepts_token(any)]
#[require_mtls]
async fn anything() {}

fn main() {
    let _ = (transfers, settlements, anything);
    let p = <__tokengate_policy_settlements as PolicySource>::policy();
    assert!(p.binding().requires_dpop() && p.binding().requires_mtls());
    assert!(p.accepts().contains(TokenType::ApiKey));
    let layer = policy!(accepts_token(m2m_token), require_dpop);
    assert!(layer.binding().requires_dpop() && !layer.binding().requires_mtls());
}
