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
    /// Days audit entries stay in the database before `keeptrack serve` moves them to a
    /// signed archive file; `none` (the default) keeps them for ever.
    RetentionDays,
}

/// The longest retention that means anything: a hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl Preference {
    pub const ALL: [Self; 4] = [
        Self::TimeZone,
        Self::StampFormat,
        Self::ReasonsRequired,
        Self::RetentionDays,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::TimeZone => "studio.time_zone",
            Self::StampFormat => "studio.stamp_format",
            Self::ReasonsRequired => "reasons.required",
            Self::RetentionDays => "audit.retention_days",
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
            Self::RetentionDays => match value {
                "" | "none" => Ok("none".to_owned()),
                days => days
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
                    .map(|d| d.to_string())
                    .ok_or_else(|| {
                        err(format!(
                            "must be a number of days from 1 to {MAX_RETENTION_DAYS}, or none"
                        ))
                    }),
            },
        }
    }
}

/// The retention in days a stored `audit.retention_days` value asks for (none: keep).
pub fn retention_days(value: Option<&str>) -> Option<u32> {
    value.and_then(|v| v.parse().ok()).filter(|d| *d >= 1)
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
        let days = Preference::parse("audit.retention_days").unwrap();
        assert_eq!(days.check(" 365 ").unwrap(), "365");
        assert_eq!(days.check("").unwrap(), "none");
        assert_eq!(days.check("none").unwrap(), "none");
        for bad in ["0", "-3", "1.5", "forever", "36501"] {
            assert!(days.check(bad).is_err(), "{bad}");
        }
        assert_eq!(retention_days(Some("365")), Some(365));
        assert_eq!(retention_days(Some("none")), None);
        assert_eq!(retention_days(None), None);
    }
}
