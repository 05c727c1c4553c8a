use tokengate::{accepts_token, require_feature, require_plan};

#[require_feature("x:pro", "", "o:")]
async fn malformed_features() {}

#[require_plan("org:pro", "pro plan")]
async fn malformed_plans() {}

// Machine tokens carry no features or plans.
#[accepts_token(api_key)]
#[require_feature("exports")]
#[require_plan("pro")]
async fn no_sessions() {}

#[accepts_token(session_token, api_key)]
#[require_plan(api_key: "pro")]
async fn plan_with_limit() {}

fn main() {
    let _ = (malformed_features, malformed_plans, no_sessions, plan_with_limit);
}
