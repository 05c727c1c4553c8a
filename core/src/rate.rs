//! Rate limits as written in `#[rate_limit("100/min")]` and `keys create --rate-limit 20/min`:
//! a number of requests per second, minute, hour or day, and whom a limit counts for.
//!
//! ```
//! use tokengate_core::rate::{Per, Rate};
//!
//! let rate: Rate = "100/min".parse().unwrap();
//! assert_eq!((rate.count(), rate.period_secs()), (100, 60));
//! assert_eq!(rate.to_string(), "100/min");
//! assert_eq!("10/minute".parse::<Rate>().unwrap(), "10/min".parse().unwrap());
//! assert!("0/s".parse::<Rate>().unwrap_err().contains("at least 1"));
//! assert_eq!(Per::from_name("subject"), Some(Per::Subject));
//! ```

use core::fmt;
use core::str::FromStr;

/// The most requests a rate may allow per period.
pub const MAX_COUNT: u32 = 1_000_000_000;

/// `count` requests per `period_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period_secs: u32,
}

impl Rate {
    /// `count` requests per `period_secs` seconds; `None` for zero or more than [`MAX_COUNT`].
    pub const fn new(count: u32, period_secs: u32) -> Option<Rate> {
        if count == 0 || count > MAX_COUNT || period_secs == 0 {
            return None;
        }
        Some(Rate { count, period_secs })
    }

    /// How many requests a period allows.
    pub const fn count(self) -> u32 {
        self.count
    }

    /// The period, in seconds.
    pub const fn period_secs(self) -> u32 {
        self.period_secs
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `N/s`, `N/min`, `N/h`, `N/day` (also `sec`, `second`, `m`, `minute`, `hour`, `d`).
    fn from_str(text: &str) -> Result<Rate, String> {
        let usage = || {
            format!(
                "`{text}` is not a rate: write a number of requests per second, minute, hour or day, e.g. \"100/min\", \"10/s\", \"5000/h\" or \"100000/day\""
            )
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(usage)?;
        let period_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(usage()),
        };
        let count: u64 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!(
                "`{text}` allows no request at all: a rate is at least 1 per period"
            ));
        }
        let count = u32::try_from(count)
            .ok()
            .filter(|c| *c <= MAX_COUNT)
            .ok_or_else(|| format!("`{text}` is more than {MAX_COUNT} requests per period"))?;
        Ok(Rate { count, period_secs })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "s",
            60 => "min",
            3600 => "h",
            86_400 => "day",
            other => return write!(f, "{}/{other}s", self.count),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Whom a rate limit counts requests for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Per {
    /// Each key or token by its id (a token without an id by its subject): the default.
    #[default]
    Key,
    /// All keys and tokens of one subject (a customer) together.
    Subject,
}

impl Per {
    /// `key` or `subject`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Per::Key => "key",
            Per::Subject => "subject",
        }
    }

    /// The `Per` named `name`.
    pub fn from_name(name: &str) -> Option<Per> {
        match name {
            "key" => Some(Per::Key),
            "subject" => Some(Per::Subject),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        for (text, count, secs, shown) in [
            ("100/min", 100, 60, "100/min"),
            ("10/s", 10, 1, "10/s"),
            (" 5 / hour ", 5, 3600, "5/h"),
            ("7/d", 7, 86_400, "7/day"),
        ] {
            let rate: Rate = text.parse().unwrap();
            assert_eq!(
                (rate.count(), rate.period_secs(), rate.to_string().as_str()),
                (count, secs, shown)
            );
        }
        for bad in [
            "",
            "100",
            "100/",
            "/min",
            "x/min",
            "100/week",
            "-1/s",
            "0/min",
            "1000000001/s",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert!(Rate::new(0, 1).is_none() && Rate::new(1, 0).is_none());
    }
}
