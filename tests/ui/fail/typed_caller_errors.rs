use tokengate::caller::{ApiKeyCaller, SessionCaller};
use tokengate::{Caller, accepts_token};

#[accepts_token(api_key)]
async fn view_of_a_type_not_accepted(caller: SessionCaller) -> String {
    caller.user_id
}

#[accepts_token(session_token, api_key)]
async fn one_view_on_a_route_of_several(caller: ApiKeyCaller) -> String {
    caller.id
}

#[accepts_token(optional, api_key)]
async fn optional_view_without_option(caller: ApiKeyCaller) -> String {
    caller.id
}

#[accepts_token(session_token, api_key)]
async fn a_match_with_an_arm_missing(caller: Caller) -> String {
    match caller {
        Caller::Session(s) => s.user_id,
    }
}

fn main() {
    let _ = (
        view_of_a_type_not_accepted,
        one_view_on_a_route_of_several,
        optional_view_without_option,
        a_match_with_an_arm_missing,
    );
}
