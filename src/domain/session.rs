//! Sessions: the times a studio takes photographs, with Spectra's lifecycle flags.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType},
    list::ListKind,
    record::{Fields, Record, RecordKind},
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub number: i64,
    pub client_id: i64,
    pub session_type_id: i64,
    pub description: Option<String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub photographer_id: Option<i64>,
    pub session_status_id: i64,
    pub status_due: Option<jiff::civil::Date>,
    pub confirmed: bool,
    pub cancelled: bool,
    pub on_hold: bool,
    pub rescheduled: bool,
}

impl Record for Session {
    const FIELDS: &'static [Field] = &[
        Field::new("number", FieldType::Int)
            .required()
            .system()
            .unique(),
        Field::new("client_id", FieldType::Ref(RecordKind::Client)).required(),
        Field::new("session_type_id", FieldType::Choice(ListKind::SessionType)).required(),
        Field::new("description", FieldType::Text { max: 200 }),
        Field::new("starts_at", FieldType::Instant).required(),
        Field::new("ends_at", FieldType::Instant).required(),
        Field::new("photographer_id", FieldType::Ref(RecordKind::User)),
        Field::new(
            "session_status_id",
            FieldType::Choice(ListKind::SessionStatus),
        )
        .required(),
        Field::new("status_due", FieldType::Date).system(),
        Field::new("confirmed", FieldType::Bool),
        Field::new("cancelled", FieldType::Bool),
        Field::new("on_hold", FieldType::Bool),
        Field::new("rescheduled", FieldType::Bool).system(),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        check_span(self.starts_at, self.ends_at, errors);
    }
}

/// Spectra's rule: moving a session marks it rescheduled and unchecks "confirmed".
pub fn on_update(before: &Fields, after: &mut Fields) {
    let moved = ["starts_at", "ends_at"]
        .iter()
        .any(|f| before.get(*f) != after.get(*f));
    if moved {
        after.insert("rescheduled".into(), true.into());
        after.insert("confirmed".into(), false.into());
    }
}

/// Calendar entries end after they start and last at most two weeks.
pub fn check_span(starts_at: Timestamp, ends_at: Timestamp, errors: &mut Vec<FieldError>) {
    if ends_at <= starts_at {
        errors.push(FieldError::new("ends_at", "must be after starts_at"));
    } else if ends_at.duration_since(starts_at).as_secs() > 14 * 24 * 3600 {
        errors.push(FieldError::new(
            "ends_at",
            "must be within 14 days of starts_at",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: serde_json::Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn end_must_follow_start() {
        let err = RecordKind::Session
            .normalize(&fields(
                json!({"number": 1, "client_id": 1, "session_type_id": 1,
                "session_status_id": 1, "starts_at": "2026-01-01T10:00:00Z",
                "ends_at": "2026-01-01T09:00:00Z"}),
            ))
            .unwrap_err();
        assert_eq!(err[0].field, "ends_at");
    }

    #[test]
    fn moving_unconfirms_and_marks_rescheduled() {
        let before = fields(json!({"starts_at": "2026-01-01T10:00:00Z", "confirmed": true}));
        let mut after = fields(json!({"starts_at": "2026-01-02T10:00:00Z", "confirmed": true}));
        on_update(&before, &mut after);
        assert_eq!(after["confirmed"], false);
        assert_eq!(after["rescheduled"], true);
        let mut same = before.clone();
        on_update(&before, &mut same);
        assert_eq!(same["confirmed"], true);
    }
}
