use tokengate::{Auth, Parts, require};

// Not async: the guard awaits the predicate.
fn not_async(_auth: &Auth, _parts: &mut Parts) -> bool {
    true
}

// Answers something other than `bool`.
async fn not_bool(_auth: &Auth, _parts: &mut Parts) -> Option<bool> {
    None
}

// Takes the wrong arguments.
async fn wrong_arguments(_auth: Auth) -> bool {
    true
}

#[require(not_async)]
async fn a() {}

#[require(not_bool)]
async fn b() {}

#[require(wrong_arguments)]
async fn c() {}

fn main() {
    let _ = (a, b, c);
}
