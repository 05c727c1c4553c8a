use tokengate::accepts_token;

#[accepts_token(api_key, any)]
async fn any_and_more() {}

fn main() {
    let _ = any_and_more;
}
