//! Field descriptions and the checks every value passes before a record sees it.

use jiff::{Timestamp, civil::Date};
use serde::Serialize;
use serde_json::Value;

use super::{list::ListKind, record::RecordKind};

/// One problem with one field, named the way the API and the forms name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What a field holds, which also decides how it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Int,
    /// Money in integer cents.
    Cents,
    Text {
        max: usize,
    },
    Bool,
    /// A UTC instant, written as RFC 3339 and stored as microseconds.
    Instant,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// Invoice lines: a JSON array checked by the invoice rules.
    Lines,
    /// Permissions: `{"feature": "level"}`, features not listed have no access.
    Grants,
    /// The id of another record.
    Ref(RecordKind),
    /// The id of an entry of a configurable list.
    Choice(ListKind),
}

/// Who may set a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Set on create and changed by updates.
    Editable,
    /// Set on create, never changed afterwards.
    CreateOnly,
    /// Only the ledger sets it (numbers, posting, voiding, password hashes).
    System,
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub access: Access,
    pub unique: bool,
    /// Never shown in a diff: the audit entry says only that it changed.
    pub secret: bool,
}

impl Field {
    pub const fn new(name: &'static str, ty: FieldType) -> Self {
        Self {
            name,
            ty,
            required: false,
            access: Access::Editable,
            unique: false,
            secret: false,
        }
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn create_only(mut self) -> Self {
        self.access = Access::CreateOnly;
        self
    }
    pub const fn system(mut self) -> Self {
        self.access = Access::System;
        self
    }
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Checks a value sent by a caller and returns it in its one canonical form
    /// (trimmed text, UTC instants, empty text as null), so that equal values compare equal.
    pub fn check(&self, value: &Value) -> Result<Value, FieldError> {
        let err = |m: &str| FieldError::new(self.name, m);
        let value = match value {
            Value::String(s) if s.trim().is_empty() && !matches!(self.ty, FieldType::Bool) => {
                &Value::Null
            }
            v => v,
        };
        if value.is_null() {
            // A flag nobody set is off: flags are never null.
            if self.ty == FieldType::Bool {
                return Ok(Value::Bool(false));
            }
            return if self.required {
                Err(err("is required"))
            } else {
                Ok(Value::Null)
            };
        }
        match self.ty {
            FieldType::Int | FieldType::Cents => match value.as_i64() {
                Some(n) if n.unsigned_abs() <= MAX_SAFE_INTEGER => Ok(Value::from(n)),
                Some(_) => Err(err("is out of range")),
                None => Err(err("must be a whole number")),
            },
            FieldType::Ref(_) | FieldType::Choice(_) => match value.as_i64() {
                Some(n) if n > 0 => Ok(Value::from(n)),
                _ => Err(err("must be the id of an existing entry")),
            },
            FieldType::Bool => value
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| err("must be true or false")),
            FieldType::Text { max } => {
                let s = value.as_str().ok_or_else(|| err("must be text"))?.trim();
                if s.chars().count() > max {
                    Err(err(&format!("is longer than {max} characters")))
                } else if s.chars().any(|c| c.is_control()) {
                    Err(err("must not contain control characters"))
                } else {
                    Ok(Value::String(s.to_owned()))
                }
            }
            FieldType::Instant => {
                let s = value
                    .as_str()
                    .ok_or_else(|| err("must be a date and time"))?;
                s.trim()
                    .parse::<Timestamp>()
                    .map(|t| Value::String(t.to_string()))
                    .map_err(|_| err("must be a date and time like 2018-10-18T15:00:00Z"))
            }
            FieldType::Date => {
                let s = value.as_str().ok_or_else(|| err("must be a date"))?;
                s.trim()
                    .parse::<Date>()
                    .map(|d| Value::String(d.to_string()))
                    .map_err(|_| err("must be a date like 2018-10-18"))
            }
            FieldType::Grants => super::permission::Grants::parse(self.name, value)
                .map(|g| g.to_sparse_value())
                .map_err(|mut errors| errors.remove(0)),
            FieldType::Lines => {
                if value.is_array() {
                    Ok(value.clone())
                } else {
                    Err(err("must be a list of lines"))
                }
            }
        }
    }
}

/// Integers above 2^53 do not survive canonical JSON (RFC 8785 numbers are doubles),
/// so no stored integer may exceed it.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Checks the shape shared by emails everywhere: something@domain.tld, no spaces.
pub fn check_email(field: &str, email: &str, errors: &mut Vec<FieldError>) {
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if !ok {
        errors.push(FieldError::new(field, "is not a valid email address"));
    }
}

/// Phone numbers are kept as typed, but must hold 7 to 15 digits (E.164's range) and only
/// the punctuation people write them with.
pub fn check_phone(field: &str, phone: &str, errors: &mut Vec<FieldError>) {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().x".contains(c));
    if !allowed || !(7..=15).contains(&digits) {
        errors.push(FieldError::new(field, "is not a valid phone number"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_trimmed_and_empty_text_is_null() {
        let f = Field::new("city", FieldType::Text { max: 10 });
        assert_eq!(f.check(&json!("  Akron ")).unwrap(), json!("Akron"));
        assert_eq!(f.check(&json!("   ")).unwrap(), Value::Null);
        assert!(f.check(&json!("x".repeat(11))).is_err());
        assert!(f.check(&json!("a\u{0}b")).is_err());
    }

    #[test]
    fn required_fields_refuse_null_and_blank() {
        let f = Field::new("last_name", FieldType::Text { max: 10 }).required();
        assert_eq!(f.check(&json!("")).unwrap_err().field, "last_name");
        assert!(f.check(&Value::Null).is_err());
    }

    #[test]
    fn instants_are_normalised_to_utc() {
        let f = Field::new("starts_at", FieldType::Instant);
        assert_eq!(
            f.check(&json!("2018-10-18T11:00:04-04:00")).unwrap(),
            json!("2018-10-18T15:00:04Z")
        );
        assert!(f.check(&json!("18/10/2018")).is_err());
        assert!(f.check(&json!(12)).is_err());
    }

    #[test]
    fn integers_must_be_whole_and_in_range() {
        let f = Field::new("amount_cents", FieldType::Cents);
        assert!(f.check(&json!(1.5)).is_err());
        assert!(f.check(&json!(u64::MAX)).is_err());
        assert!(f.check(&json!(9_007_199_254_740_992_i64)).is_err());
        assert_eq!(f.check(&json!(-500)).unwrap(), json!(-500));
    }

    #[test]
    fn emails_and_phones() {
        let mut e = vec![];
        check_email("email", "jane@example.com", &mut e);
        check_phone("phone", "+1 (330) 555-0199", &mut e);
        assert!(e.is_empty());
        for bad in ["jane", "jane@", "@x.com", "a b@x.com", "a@x", "a@x..com"] {
            check_email("email", bad, &mut e);
        }
        assert_eq!(e.len(), 6);
        e.clear();
        for bad in ["12", "555-CALL-NOW", "1234567890123456"] {
            check_phone("phone", bad, &mut e);
        }
        assert_eq!(e.len(), 3);
    }
}
