use tokengate::accepts_token;

struct Service;

impl Service {
    #[accepts_token(api_key)]
    async fn handler(&self) {}
}

fn main() {
    let _ = Service;
}
