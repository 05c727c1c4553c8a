use tokengate::accepts_token;

#[accepts_token()]
async fn empty_parens() {}

#[accepts_token]
async fn bare() {}

fn main() {
    let _ = (empty_parens, bare);
}
