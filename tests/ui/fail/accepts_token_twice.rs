use tokengate::accepts_token;

#[accepts_token(api_key)]
#[accepts_token(m2m_token)]
async fn twice() {}

fn main() {
    let _ = twice;
}
