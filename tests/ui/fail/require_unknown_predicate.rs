// An unknown predicate is the compiler's own error, at the name the user wrote.
use tokengate::{Auth, Parts, accepts_token, require};

mod auth {
    pub async fn is_owner(_auth: &tokengate::Auth, _parts: &mut tokengate::Parts) -> bool {
        true
    }
}

async fn is_owner(_auth: &Auth, _parts: &mut Parts) -> bool {
    true
}

#[require(is_ownr)]
async fn typo() {}

#[accepts_token(session_token, api_key)]
#[require(is_owner, crate::auth::is_ownr)]
async fn unknown_in_a_path() {}

#[require(crate::missing::is_owner)]
async fn unknown_module() {}

fn main() {
    let _ = (typo, unknown_in_a_path, unknown_module);
}
