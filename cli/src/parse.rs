//! Parsing of flag values: claims, durations.

use std::time::Duration;

pub(crate) fn parse_claims(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("the claims must be a JSON object, e.g. '{\"team\":\"billing\"}'".into()),
        Err(e) => Err(format!(
            "not valid JSON ({e}); give an object, e.g. '{{\"team\":\"billing\"}}'"
        )),
    }
}

/// A rate limit: a number per second, minute, hour or day (`20/min`).
pub(crate) fn parse_rate(text: &str) -> Result<tokengate_runtime::rate_limit::Rate, String> {
    text.parse()
}

/// A grace period: `0` (none: the old secret is refused at once) or a duration like `24h`.
pub(crate) fn parse_grace(text: &str) -> Result<Duration, String> {
    if text.trim_end_matches(['s', 'm', 'h', 'd', 'w']) == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(text).map_err(|e| e.replace("the lifetime", "the grace period"))
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let usage = || format!("`{text}` is not a duration: use a number and a unit, e.g. 30d, 12h, 15m, 3600s or 2w");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(usage()),
    };
    if number == 0 {
        return Err("the lifetime must be more than zero".into());
    }
    let secs = number
        .checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 366 * 86_400)
        .ok_or_else(|| "the lifetime must be at most 100 years".to_string())?;
    Ok(Duration::from_secs(secs))
}

/// `--limit`: a whole number of keys, at least 1.
pub(crate) fn parse_limit(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("at least 1; leave --limit out to list every key".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "a whole number of keys from 1 to {} (e.g. --limit 50); leave --limit out to list every key",
            u64::MAX
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("30y").is_err());
        assert!(parse_duration("99999999999w").is_err());
    }

    #[test]
    fn graces() {
        assert_eq!(parse_grace("0"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("0h"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_grace("soon").unwrap_err().contains("not a duration"));
        assert!(parse_grace("-1h").is_err());
    }

    #[test]
    fn claims() {
        assert!(parse_claims(r#"{"a":1}"#).is_ok());
        assert!(parse_claims("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_claims("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("50"), Ok(50));
        assert!(parse_limit("0").unwrap_err().contains("at least 1"));
        assert!(parse_limit("-1").unwrap_err().contains("whole number"));
        assert!(
            parse_limit("99999999999999999999999")
                .unwrap_err()
                .contains("whole number")
        );
    }
}
