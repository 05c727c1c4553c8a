use tokengate::accepts_token;

#[accepts_token(api_key, m2m_token, api_key)]
async fn twice() {}

fn main() {
    let _ = twice;
}
