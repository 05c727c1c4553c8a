//! Clerk's reverification requirements: the presets and the object form, as text and back.
//!
//! ```
//! use tokengate_core::reverification::{Level, Reverification};
//!
//! let strict: Reverification = "strict".parse().unwrap();
//! assert_eq!((strict.level(), strict.after_minutes()), (Level::SecondFactor, 10));
//! let custom = Reverification::Custom { level: Level::SecondFactor, after_minutes: 30 };
//! assert_eq!(custom.to_string(), "second_factor:30");
//! assert_eq!("second_factor:30".parse::<Reverification>(), Ok(custom));
//! ```
//!
//! The text form is what a policy stores and the report shows: a preset's name, or
//! `<level>:<after_minutes>`. The presets are those of Clerk's `@clerk/shared`
//! (`TYPES_TO_OBJECTS`): `strict_mfa` (10 minutes, `multi_factor`), `strict` (10,
//! `second_factor`), `moderate` (60, `second_factor`), `lax` (1440, `second_factor`).

use std::fmt;
use std::str::FromStr;

/// Which factors must have been verified recently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// The first factor (password, code…).
    FirstFactor,
    /// The second factor, or the first when the user has none.
    SecondFactor,
    /// Both factors, or the first when the user has no second.
    MultiFactor,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 3] = [Level::FirstFactor, Level::SecondFactor, Level::MultiFactor];

    /// `first_factor`, `second_factor` or `multi_factor`, as Clerk spells them.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::FirstFactor => "first_factor",
            Level::SecondFactor => "second_factor",
            Level::MultiFactor => "multi_factor",
        }
    }

    /// The level named `name`.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

/// Clerk's presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// 10 minutes, `multi_factor`.
    StrictMfa,
    /// 10 minutes, `second_factor`.
    Strict,
    /// 60 minutes, `second_factor`.
    Moderate,
    /// 1440 minutes, `second_factor`.
    Lax,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 4] = [Preset::StrictMfa, Preset::Strict, Preset::Moderate, Preset::Lax];

    /// `strict_mfa`, `strict`, `moderate` or `lax`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::StrictMfa => "strict_mfa",
            Preset::Strict => "strict",
            Preset::Moderate => "moderate",
            Preset::Lax => "lax",
        }
    }

    /// The preset named `name`.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == name)
    }

    const fn level(self) -> Level {
        match self {
            Preset::StrictMfa => Level::MultiFactor,
            _ => Level::SecondFactor,
        }
    }

    const fn after_minutes(self) -> u32 {
        match self {
            Preset::StrictMfa | Preset::Strict => 10,
            Preset::Moderate => 60,
            Preset::Lax => 1440,
        }
    }
}

/// A reverification requirement: a preset, or a level and a number of minutes (over zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reverification {
    /// One of Clerk's presets.
    Preset(Preset),
    /// `{ level, afterMinutes }`.
    Custom {
        /// The factors to have verified.
        level: Level,
        /// How recently, in minutes (more than zero).
        after_minutes: u32,
    },
}

impl Reverification {
    /// The level the requirement asks for.
    pub const fn level(self) -> Level {
        match self {
            Reverification::Preset(p) => p.level(),
            Reverification::Custom { level, .. } => level,
        }
    }

    /// Within how many minutes the factors must have been verified.
    pub const fn after_minutes(self) -> u32 {
        match self {
            Reverification::Preset(p) => p.after_minutes(),
            Reverification::Custom { after_minutes, .. } => after_minutes,
        }
    }
}

impl fmt::Display for Reverification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reverification::Preset(p) => f.write_str(p.as_str()),
            Reverification::Custom { level, after_minutes } => write!(f, "{}:{after_minutes}", level.as_str()),
        }
    }
}

/// Why a text is not a reverification requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverificationError(String);

impl fmt::Display for ReverificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a reverification requirement: write a preset (strict_mfa, strict, moderate, lax) or `<level>:<minutes>` (level first_factor, second_factor or multi_factor; minutes over zero)",
            self.0.escape_debug()
        )
    }
}

impl std::error::Error for ReverificationError {}

impl FromStr for Reverification {
    type Err = ReverificationError;

    fn from_str(s: &str) -> Result<Reverification, ReverificationError> {
        let error = || ReverificationError(s.to_owned());
        if let Some(preset) = Preset::from_name(s) {
            return Ok(Reverification::Preset(preset));
        }
        let (level, minutes) = s.split_once(':').ok_or_else(error)?;
        let level = Level::from_name(level).ok_or_else(error)?;
        match minutes.parse::<u32>() {
            Ok(after_minutes) if after_minutes > 0 && !minutes.starts_with('+') => {
                Ok(Reverification::Custom { level, after_minutes })
            }
            _ => Err(error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_clerks() {
        let of = |s: &str| s.parse::<Reverification>().map(|r| (r.level(), r.after_minutes()));
        assert_eq!(of("strict_mfa"), Ok((Level::MultiFactor, 10)));
        assert_eq!(of("strict"), Ok((Level::SecondFactor, 10)));
        assert_eq!(of("moderate"), Ok((Level::SecondFactor, 60)));
        assert_eq!(of("lax"), Ok((Level::SecondFactor, 1440)));
        assert_eq!(of("first_factor:5"), Ok((Level::FirstFactor, 5)));
        for bad in [
            "",
            "strict ",
            "Strict",
            "second_factor",
            "second_factor:0",
            "second_factor:-1",
            "x:5",
            "second_factor:+5",
            "second_factor:5.0",
        ] {
            assert!(bad.parse::<Reverification>().is_err(), "{bad:?}");
        }
    }
}
