use tokengate::{Auth, accepts_token, public, require};

#[accepts_token(optional)]
async fn optional_alone() {}

#[public]
#[accepts_token(optional, session_token)]
async fn optional_and_public() {}

#[accepts_token(optional, api_key, optional)]
async fn optional_twice() {}

async fn is_owner(_auth: &Auth, _parts: &mut tokengate::Parts) -> bool {
    true
}

#[accepts_token(optional, session_token)]
#[require(is_owner)]
async fn optional_with_a_condition() {}

#[accepts_token(optional, session_token, api_key)]
async fn optional_without_option(auth: Auth) -> String {
    format!("{:?}", auth.user_id)
}

fn main() {
    let _ = (optional_alone, optional_and_public, optional_twice, optional_with_a_condition, optional_without_option);
}
