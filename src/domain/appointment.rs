//! Appointments: anything on the calendar that is not a photo session.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType},
    list::ListKind,
    record::{Record, RecordKind},
    session::check_span,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appointment {
    pub client_id: Option<i64>,
    pub session_id: Option<i64>,
    pub appointment_type_id: i64,
    pub description: Option<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub appointment_status_id: Option<i64>,
}

impl Record for Appointment {
    const FIELDS: &'static [Field] = &[
        Field::new("client_id", FieldType::Ref(RecordKind::Client)),
        Field::new("session_id", FieldType::Ref(RecordKind::Session)),
        Field::new(
            "appointment_type_id",
            FieldType::Choice(ListKind::AppointmentType),
        )
        .required(),
        Field::new("description", FieldType::Text { max: 200 }),
        Field::new("starts_at", FieldType::Instant).required(),
        Field::new("ends_at", FieldType::Instant).required(),
        Field::new(
            "appointment_status_id",
            FieldType::Choice(ListKind::AppointmentStatus),
        ),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        check_span(self.starts_at, self.ends_at, errors);
    }
}
