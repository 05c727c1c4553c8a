//! What the commands print: times, key records, listings, verified callers.

use std::io::Write as _;

use tokengate_runtime::Auth;
use tokengate_runtime::keys::{KeyRecord, now_unix};

use crate::Format;

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn status(record: &KeyRecord, now: i64) -> &'static str {
    if record.is_revoked() {
        "revoked"
    } else if record.disabled_at.is_some() {
        "disabled"
    } else if record.is_expired_at(now) {
        "expired"
    } else {
        "active"
    }
}

pub(crate) fn record_json(record: &KeyRecord, now: i64) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["status"] = status(record, now).into();
    value
}

pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// The output of `keys list`, printed a page at a time: a table, or one JSON array.
pub(crate) struct Listing {
    format: Format,
    now: i64,
    printed: usize,
    last_id: String,
}

impl Listing {
    pub(crate) fn new(format: Format) -> Listing {
        Listing {
            format,
            now: now_unix(),
            printed: 0,
            last_id: String::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.printed == 0
    }

    pub(crate) fn last_id(&self) -> &str {
        &self.last_id
    }

    pub(crate) fn rows(&mut self, records: &[KeyRecord]) {
        for r in records {
            match self.format {
                Format::Json => {
                    let text = serde_json::to_string_pretty(&record_json(r, self.now)).unwrap_or_default();
                    let indented = text.replace('\n', "\n  ");
                    print!("{}\n  {indented}", if self.printed == 0 { "[" } else { "," });
                }
                Format::Text => {
                    if self.printed == 0 {
                        println!(
                            "{:<35}  {:<9}  {:<7}  {:<20}  {:<20}  {:<20}  SCOPES",
                            "ID", "KIND", "STATUS", "NAME", "SUBJECT", "LAST USED"
                        );
                    }
                    let last_used = r.last_used_at.map_or_else(|| "never".into(), format_time);
                    println!(
                        "{:<35}  {:<9}  {:<7}  {:<20}  {:<20}  {:<20}  {}",
                        r.id,
                        r.kind.as_str(),
                        status(r, self.now),
                        r.name,
                        r.subject,
                        last_used,
                        r.scopes.join(" ")
                    );
                }
            }
            self.printed += 1;
            self.last_id.clone_from(&r.id);
        }
        let _ = std::io::stdout().flush();
    }

    pub(crate) fn finish(&self) {
        match (self.format, self.printed) {
            (Format::Json, 0) => println!("[]"),
            (Format::Json, _) => println!("\n]"),
            (Format::Text, 0) => println!("No keys."),
            (Format::Text, _) => {}
        }
    }
}

pub(crate) fn print_auth(auth: &Auth, format: Format) {
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(auth).unwrap_or_default();
            value["valid"] = true.into();
            print_json(&value);
        }
        Format::Text => {
            println!("valid {}", auth.token_type);
            println!("id:      {}", auth.id.as_deref().unwrap_or("-"));
            println!("name:    {}", auth.name.as_deref().unwrap_or("-"));
            println!("subject: {}", auth.subject.as_deref().unwrap_or("-"));
            println!("scopes:  {}", auth.scopes.join(" "));
            if let Some(exp) = auth.expiration {
                println!("expires: {}", format_time(exp));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_716_883_200), "2024-05-28T08:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
    }
}
