use tokengate::policy;

fn main() {
    let _ = policy!(require_acr("mfa", max_age = 600));
    let _ = policy!(accepts_token(api_key), require_plan("pro"), require_reverification(laxx));
}
