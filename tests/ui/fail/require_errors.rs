use tokengate::{Auth, Parts, accepts_token, public, require};

async fn is_owner(_auth: &Auth, _parts: &mut Parts) -> bool {
    true
}

#[require()]
async fn empty() {}

#[require]
async fn no_arguments() {}

#[require("is_owner")]
async fn string_literal() {}

#[require(42)]
async fn number_literal() {}

#[require(is_owner())]
async fn called() {}

#[require(any(is_owner, is_owner))]
async fn any_of() {}

#[accepts_token(api_key)]
#[require(is_owner)]
#[require(is_owner)]
async fn twice() {}

#[public]
#[require(is_owner)]
async fn public_with_condition() {}

fn main() {
    let _ = (
        empty,
        no_arguments,
        string_literal,
        number_literal,
        called,
        any_of,
        twice,
        public_with_condition,
    );
}
