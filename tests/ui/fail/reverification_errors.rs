use tokengate::{accepts_token, require_reverification};

#[require_reverification(strcit)]
async fn unknown_preset() {}

#[require_reverification("strict")]
async fn quoted_preset() {}

#[require_reverification(level = second_factr, after_minutes = 0)]
async fn bad_object() {}

#[require_reverification(level = multi_factor, after_minutes = -5)]
async fn negative_minutes() {}

#[require_reverification(level = first_factor)]
async fn missing_minutes() {}

#[require_reverification(level = first_factor, after_minutse = 5)]
async fn unknown_key() {}

#[require_reverification()]
async fn empty() {}

#[require_reverification(strict, lax)]
async fn two_presets() {}

// OAuth tokens carry no `fva`.
#[accepts_token(oauth_token)]
#[require_reverification(strict)]
async fn no_sessions() {}

fn main() {
    let _ = (unknown_preset, quoted_preset, bad_object, negative_minutes, missing_minutes, unknown_key, empty, two_presets, no_sessions);
}
