use tokengate::{accepts_token, require_scope};

// Types are separated by `,` in `#[accepts_token]`…
#[accepts_token(api_key | m2m_token)]
async fn bars_in_accepts() {}

// …and by `|` in a type limit.
#[accepts_token(api_key, m2m_token)]
#[require_scope(api_key, m2m_token: "write:users")]
async fn commas_in_limit() {}

fn main() {
    let _ = (bars_in_accepts, commas_in_limit);
}
