//! The time stamp CTRL+T inserts, and the date and time formats of status notes:
//! `10/18/2018 11:00:04 AM MKH – `, in the studio's time zone.

use jiff::{Timestamp, civil::Date, tz::TimeZone};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StampFormat {
    /// Spectra's: `10/18/2018 11:00:04 AM MKH – `.
    #[default]
    Us,
    /// ISO 8601: `2018-10-18 11:00:04 MKH – `.
    Iso,
}

impl StampFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "us" => Some(Self::Us),
            "iso" => Some(Self::Iso),
            _ => None,
        }
    }
}

/// The stamp for `initials` at `at`: no zero-padding of month, day or hour in the US
/// form, seconds always two digits, an en dash and a space to type after.
pub fn stamp(at: Timestamp, tz: &TimeZone, initials: &str, format: StampFormat) -> String {
    let t = at.to_zoned_datetime(tz.clone());
    match format {
        StampFormat::Us => format!(
            "{} {}:{:02}:{:02} {} {initials} – ",
            date(t.date()),
            hour12(t.hour()),
            t.minute(),
            t.second(),
            meridiem(t.hour())
        ),
        StampFormat::Iso => format!(
            "{} {:02}:{:02}:{:02} {initials} – ",
            t.date(),
            t.hour(),
            t.minute(),
            t.second()
        ),
    }
}

/// `10/18/2018`.
pub fn date(d: Date) -> String {
    format!("{}/{}/{}", d.month(), d.day(), d.year())
}

/// `2:00 PM`.
pub fn time(at: Timestamp, tz: &TimeZone) -> String {
    let t = at.to_zoned_datetime(tz.clone());
    format!(
        "{}:{:02} {}",
        hour12(t.hour()),
        t.minute(),
        meridiem(t.hour())
    )
}

/// `10/20/2018 2:00 PM–3:00 PM`, or with the end's date when it ends on another day.
pub fn span(start: Timestamp, end: Timestamp, tz: &TimeZone) -> String {
    let (s, e) = (
        start.to_zoned_datetime(tz.clone()),
        end.to_zoned_datetime(tz.clone()),
    );
    let end_text = if s.date() == e.date() {
        time(end, tz)
    } else {
        format!("{} {}", date(e.date()), time(end, tz))
    };
    format!("{} {}–{end_text}", date(s.date()), time(start, tz))
}

fn hour12(h: i8) -> i8 {
    match h % 12 {
        0 => 12,
        h => h,
    }
}

fn meridiem(h: i8) -> &'static str {
    if h < 12 { "AM" } else { "PM" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn stamps() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cases = [
            // The seed's example.
            ("2018-10-18T15:00:04Z", "10/18/2018 11:00:04 AM MKH – "),
            // Midnight and noon.
            ("2018-10-18T04:00:00Z", "10/18/2018 12:00:00 AM MKH – "),
            ("2018-10-18T16:00:00Z", "10/18/2018 12:00:00 PM MKH – "),
            ("2018-10-19T03:59:59Z", "10/18/2018 11:59:59 PM MKH – "),
            // No zero padding of month, day or hour; seconds always two digits.
            ("2019-01-05T14:07:09Z", "1/5/2019 9:07:09 AM MKH – "),
            // Autumn: 1:30 AM happens twice, first in EDT then in EST.
            ("2018-11-04T05:30:00Z", "11/4/2018 1:30:00 AM MKH – "),
            ("2018-11-04T06:30:00Z", "11/4/2018 1:30:00 AM MKH – "),
            ("2018-11-04T07:30:00Z", "11/4/2018 2:30:00 AM MKH – "),
            // Spring: 2:00 to 2:59 AM does not exist.
            ("2019-03-10T06:59:59Z", "3/10/2019 1:59:59 AM MKH – "),
            ("2019-03-10T07:00:00Z", "3/10/2019 3:00:00 AM MKH – "),
        ];
        for (instant, expected) in cases {
            assert_eq!(
                stamp(at(instant), &ny, "MKH", StampFormat::Us),
                expected,
                "{instant}"
            );
        }
    }

    #[test]
    fn iso_stamps_and_other_zones() {
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            stamp(at("2018-10-18T15:00:04Z"), &ny, "MKH", StampFormat::Iso),
            "2018-10-18 11:00:04 MKH – "
        );
        let sydney = TimeZone::get("Australia/Sydney").unwrap();
        assert_eq!(
            stamp(at("2018-10-18T15:00:04Z"), &sydney, "SPSA", StampFormat::Us),
            "10/19/2018 2:00:04 AM SPSA – "
        );
    }

    #[test]
    fn spans() {
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            span(at("2018-10-20T18:00:00Z"), at("2018-10-20T19:00:00Z"), &ny),
            "10/20/2018 2:00 PM–3:00 PM"
        );
        assert_eq!(
            span(at("2018-10-20T18:00:00Z"), at("2018-10-21T05:00:00Z"), &ny),
            "10/20/2018 2:00 PM–10/21/2018 1:00 AM"
        );
    }
}
