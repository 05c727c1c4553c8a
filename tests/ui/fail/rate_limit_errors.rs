use tokengate::{accepts_token, rate_limit};

#[accepts_token(api_key)]
#[rate_limit("100/week")]
async fn unknown_period() {}

#[accepts_token(api_key)]
#[rate_limit("0/min")]
async fn zero() {}

#[accepts_token(api_key)]
#[rate_limit()]
async fn empty() {}

#[accepts_token(api_key)]
#[rate_limit("10/s", "100/min")]
async fn two_rates() {}

#[accepts_token(api_key)]
#[rate_limit("10/s", per = customer, burst = 5)]
async fn unknown_options() {}

#[accepts_token(api_key)]
#[rate_limit("10/s", per = subjet)]
async fn per_typo() {}

#[accepts_token(api_key)]
#[rate_limit(oauth_token: "10/s")]
async fn limited_to_unaccepted() {}

#[accepts_token(api_key)]
#[rate_limit(any("10/s"))]
async fn any_rate() {}

fn main() {
    let _ = (unknown_period, zero, empty, two_rates, unknown_options, per_typo, limited_to_unaccepted, any_rate);
}
