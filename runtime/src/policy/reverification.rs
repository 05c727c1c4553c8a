//! Reverification of a session: the `fva` claim, `[first_factor_age, second_factor_age]` in
//! minutes (`-1`: never verified), decided exactly as Clerk's `@clerk/shared`
//! `checkReverificationAuthorization` decides it.
//!
//! An absent or malformed `fva` (not two numbers, each `-1` or at least `0`) fails. A factor is
//! fresh enough when it was verified and fewer minutes ago than the requirement allows.
//! `first_factor` needs the first; `second_factor` the second, or the first when the user has
//! no second; `multi_factor` both, or the first when the user has no second.

use serde_json::Value;
use tokengate_core::reverification::{Level, Reverification};

/// Whether the session's `fva` claim meets `required`.
pub(crate) fn fresh(fva: Option<&Value>, required: Reverification) -> bool {
    let Some((first, second)) = factor_ages(fva) else {
        return false;
    };
    if first == -1.0 && second == -1.0 {
        return false;
    }
    let minutes = f64::from(required.after_minutes());
    let first_fresh = first != -1.0 && minutes > first;
    let second_fresh = second != -1.0 && minutes > second;
    match required.level() {
        Level::FirstFactor => first_fresh,
        Level::SecondFactor if second == -1.0 => first_fresh,
        Level::SecondFactor => second_fresh,
        Level::MultiFactor if second == -1.0 => first_fresh,
        Level::MultiFactor => first != -1.0 && first_fresh && second_fresh,
    }
}

/// The two ages of a well-formed `fva`.
fn factor_ages(fva: Option<&Value>) -> Option<(f64, f64)> {
    let Some(Value::Array(ages)) = fva else {
        return None;
    };
    let [first, second] = ages.as_slice() else {
        return None;
    };
    let age = |v: &Value| v.as_f64().filter(|x| x.is_finite() && (*x == -1.0 || *x >= 0.0));
    Some((age(first)?, age(second)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(fva: Value, r: &str) -> bool {
        fresh(Some(&fva), r.parse().unwrap())
    }

    #[test]
    fn levels_as_clerk_decides_them() {
        assert!(check(json!([0, 5]), "strict"));
        assert!(!check(json!([0, 10]), "strict"), "fewer minutes than allowed, strictly");
        assert!(check(json!([5, -1]), "strict"), "no second factor: the first counts");
        assert!(!check(json!([-1, -1]), "lax"));
        assert!(check(json!([-1, 3]), "strict"));
        assert!(!check(json!([-1, 3]), "strict_mfa"));
        assert!(check(json!([3, 3]), "strict_mfa"));
        assert!(!check(json!([30, 3]), "strict_mfa"));
        assert!(check(json!([3, 300]), "first_factor:5"));
        assert!(check(json!([2.5, -1]), "first_factor:3"));
    }

    #[test]
    fn malformed_fails_closed() {
        for bad in [
            json!(null),
            json!([1]),
            json!([1, 2, 3]),
            json!(["1", 2]),
            json!([-2, 1]),
            json!({"0": 1}),
            json!(-1),
            json!([-0.5, 1]),
        ] {
            assert!(!check(bad.clone(), "lax"), "{bad}");
        }
        assert!(!fresh(None, "lax".parse().unwrap()));
    }
}
