//! Studio preferences that change behaviour, and the values each accepts.

use jiff::tz::TimeZone;

use super::{field::FieldError, reason::ReasonRule, stamp::StampFormat};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preference {
    /// The studio's IANA time zone; stamps, due dates and date filters use it.
    TimeZone,
    /// `us` (10/18/2018 11:00:04 AM) or `iso` (2018-10-18 11:00:04).
    StampFormat,
    /// The changes that need a reason: rule names separated by commas.
    ReasonsRequired,
}

impl Preference {
    pub const ALL: [Self; 3] = [Self::TimeZone, Self::StampFormat, Self::ReasonsRequired];

    pub fn key(self) -> &'static str {
        match self {
            Self::TimeZone => "studio.time_zone",
            Self::StampFormat => "studio.stamp_format",
            Self::ReasonsRequired => "reasons.required",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Checks a value and returns it in canonical form.
    pub fn check(self, value: &str) -> Result<String, FieldError> {
        let value = value.trim();
        let err = |m: String| FieldError::new(self.key(), m);
        match self {
            Self::TimeZone => TimeZone::get(value)
                .map(|_| value.to_owned())
                .map_err(|_| err(format!("{value:?} is not an IANA time zone name"))),
            Self::StampFormat => StampFormat::parse(value)
                .map(|_| value.to_owned())
                .ok_or_else(|| err("must be us or iso".into())),
            Self::ReasonsRequired => ReasonRule::parse_list(value)
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .map_err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(
            Preference::TimeZone.check(" America/New_York ").unwrap(),
            "America/New_York"
        );
        assert_eq!(
            Preference::TimeZone
                .check("Mars/Olympus")
                .unwrap_err()
                .field,
            "studio.time_zone"
        );
        assert!(Preference::StampFormat.check("eu").is_err());
        assert_eq!(
            Preference::ReasonsRequired
                .check("delete , restore")
                .unwrap(),
            "delete,restore"
        );
        assert!(Preference::parse("nope").is_none());
    }
}
