use tokengate::accepts_token;

struct Handlers;

// Handlers are free functions: the attribute adds items beside the function, which an
// `impl` block cannot hold.
impl Handlers {
    #[accepts_token(api_key)]
    async fn handler() {}
}

fn main() {
    let _ = Handlers;
}
