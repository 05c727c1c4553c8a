//! `#[require_feature]`, `#[require_plan]`, `#[require_reverification]`, `#[require_acr]` and
//! the same in `policy!`.
#![deny(warnings)]

use axum::Router;
use axum::routing::{delete, get, post};
use tokengate::{
    Policy, TokenGate, accepts_token, policy, require_acr, require_feature, require_plan, require_reverification,
    require_scope,
};

#[require_feature("exports")]
#[require_plan(any("o:pro", "u:pro"))]
async fn exports() {}

#[require_feature(all("o:exports", "u:beta"))]
async fn beta() {}

#[require_reverification(strict)]
async fn delete_account() {}

#[require_reverification(level = second_factor, after_minutes = 30)]
async fn change_email() {}

// Sessions reverify; OAuth tokens step up (RFC 9470); API keys need their scope.
#[accepts_token(session_token, oauth_token, api_key)]
#[require_reverification(strict_mfa)]
#[require_acr(any("mfa", "urn:example:phr"), max_age = 600)]
#[require_scope(api_key: "payouts")]
async fn payouts() {}

#[accepts_token(oauth_token)]
#[require_acr(max_age = 300)]
async fn recent() {}

static POLICY: Policy = policy!(require_feature("reports"), require_reverification(lax));

fn main() {
    let _ = &POLICY;
    let _ = policy!(accepts_token(oauth_token), require_acr("mfa"));
    let _router: Router<TokenGate> = Router::new()
        .route("/exports", get(exports))
        .route("/beta", get(beta))
        .route("/account", delete(delete_account))
        .route("/email", post(change_email))
        .route("/payouts", post(payouts))
        .route("/recent", get(recent));
}
