use tokengate::accepts_token;

#[accepts_token("api_key")]
async fn quoted() {}

#[accepts_token("apikey", "any")]
async fn quoted_unknown() {}

fn main() {
    let _ = (quoted, quoted_unknown);
}
