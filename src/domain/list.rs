//! Configurable lists (statuses, types, payment methods) and the defaults a new studio
//! starts with.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    ClientStatus,
    SessionType,
    SessionStatus,
    AppointmentType,
    AppointmentStatus,
    InvoiceStatus,
    PaymentMethod,
}

/// A default entry: its name and, for types, the default length in minutes; for
/// statuses, the days until the status is due.
pub struct DefaultItem {
    pub name: &'static str,
    pub minutes: Option<i64>,
    pub days: Option<i64>,
}

const fn item(name: &'static str) -> DefaultItem {
    DefaultItem {
        name,
        minutes: None,
        days: None,
    }
}
const fn timed(name: &'static str, minutes: i64) -> DefaultItem {
    DefaultItem {
        name,
        minutes: Some(minutes),
        days: None,
    }
}
const fn due(name: &'static str, days: i64) -> DefaultItem {
    DefaultItem {
        name,
        minutes: None,
        days: Some(days),
    }
}

const CLIENT_STATUSES: &[DefaultItem] = &[
    item("Prospect"),
    item("Web Inquiry"),
    item("Active Client"),
    item("Loyalty Client"),
    item("Upset Client"),
    item("Inactive"),
];

const SESSION_TYPES: &[DefaultItem] = &[
    timed("Family Portrait", 60),
    timed("Newborn", 120),
    timed("Senior Portrait", 90),
    timed("Headshot", 30),
    timed("Wedding", 480),
    timed("School Picture Day", 240),
];

const SESSION_STATUSES: &[DefaultItem] = &[
    due("Session Pending", 0),
    due("Image Capture Pending", 5),
    due("Proofing Pending", 5),
    due("Order Pending", 10),
    due("Retouch Pending", 5),
    due("Production Pending", 10),
    due("Complete", 0),
];

const APPOINTMENT_TYPES: &[DefaultItem] = &[
    timed("Consultation", 30),
    timed("Ordering Session", 60),
    timed("Pickup", 15),
    timed("Staff Meeting", 60),
];

const APPOINTMENT_STATUSES: &[DefaultItem] = &[
    item("Booked"),
    item("Confirmed"),
    item("Completed"),
    item("No Show"),
    item("Cancelled"),
];

const INVOICE_STATUSES: &[DefaultItem] = &[
    due("Order Placed", 2),
    due("In Production", 10),
    due("Ready for Pickup", 5),
    due("Order Complete and Delivered", 0),
];

const PAYMENT_METHODS: &[DefaultItem] = &[
    item("Cash"),
    item("Check"),
    item("Credit Card"),
    item("Gift Certificate"),
    item("Other"),
];

impl ListKind {
    pub const ALL: [Self; 7] = [
        Self::ClientStatus,
        Self::SessionType,
        Self::SessionStatus,
        Self::AppointmentType,
        Self::AppointmentStatus,
        Self::InvoiceStatus,
        Self::PaymentMethod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientStatus => "client_status",
            Self::SessionType => "session_type",
            Self::SessionStatus => "session_status",
            Self::AppointmentType => "appointment_type",
            Self::AppointmentStatus => "appointment_status",
            Self::InvoiceStatus => "invoice_status",
            Self::PaymentMethod => "payment_method",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What a new studio starts with, modelled on Spectra's examples.
    pub fn defaults(self) -> &'static [DefaultItem] {
        match self {
            Self::ClientStatus => CLIENT_STATUSES,
            Self::SessionType => SESSION_TYPES,
            Self::SessionStatus => SESSION_STATUSES,
            Self::AppointmentType => APPOINTMENT_TYPES,
            Self::AppointmentStatus => APPOINTMENT_STATUSES,
            Self::InvoiceStatus => INVOICE_STATUSES,
            Self::PaymentMethod => PAYMENT_METHODS,
        }
    }
}

impl std::fmt::Display for ListKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The date a status falls due: `days` business days (Monday to Friday) after `from`,
/// as Spectra counts status durations.
pub fn due_date(from: jiff::civil::Date, days: i64) -> jiff::civil::Date {
    use jiff::civil::Weekday;
    let mut date = from;
    let mut left = days;
    while left > 0 {
        date = date.tomorrow().unwrap_or(date);
        if !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    date
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn due_dates_skip_weekends() {
        // Thursday 2018-10-18 + 5 business days = Thursday 2018-10-25.
        assert_eq!(due_date(date(2018, 10, 18), 5), date(2018, 10, 25));
        // Friday + 1 = Monday.
        assert_eq!(due_date(date(2018, 10, 19), 1), date(2018, 10, 22));
        assert_eq!(due_date(date(2018, 10, 20), 0), date(2018, 10, 20));
    }

    #[test]
    fn every_list_has_defaults() {
        for kind in ListKind::ALL {
            assert!(!kind.defaults().is_empty());
            assert_eq!(ListKind::parse(kind.as_str()), Some(kind));
        }
    }
}
