use tokengate::{accepts_token, require_scope};

#[accepts_token(types = api_key)]
async fn name_value() {}

#[accepts_token(api_key)]
#[require_scope(one_of("read:users", "admin"))]
async fn unknown_call() {}

#[accepts_token(api_key)]
#[require_scope(read_users)]
async fn ident_scope() {}

#[accepts_token(session_token, api_key)]
#[require_scope(api_key)]
async fn limit_without_colon() {}

#[accepts_token(api_key)]
#[require_scope(42)]
async fn number() {}

#[accepts_token(api_key)]
#[require_scope = "read:users"]
async fn name_value_attribute() {}

fn main() {
    let _ = (name_value, unknown_call, ident_scope, limit_without_colon, number, name_value_attribute);
}
