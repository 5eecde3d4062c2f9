//! The record kinds and what is common to them: field tables, normalisation of a
//! caller's fields into a valid record, labels for the audit log.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{
    appointment::Appointment,
    audit::Category,
    client::Client,
    field::{Access, Field, FieldError},
    invoice::Invoice,
    payment::Payment,
    security_group::SecurityGroup,
    session::Session,
    user::User,
};

/// A record's business fields, by name, in their canonical JSON form.
pub type Fields = serde_json::Map<String, Value>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Client,
    Session,
    Appointment,
    Invoice,
    Payment,
    User,
    SecurityGroup,
}

impl RecordKind {
    pub const ALL: [Self; 7] = [
        Self::Client,
        Self::Session,
        Self::Appointment,
        Self::Invoice,
        Self::Payment,
        Self::User,
        Self::SecurityGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Session => "session",
            Self::Appointment => "appointment",
            Self::Invoice => "invoice",
            Self::Payment => "payment",
            Self::User => "user",
            Self::SecurityGroup => "security_group",
        }
    }

    /// The table, which is also the plural used in URLs.
    pub fn table(self) -> &'static str {
        match self {
            Self::Client => "clients",
            Self::Session => "sessions",
            Self::Appointment => "appointments",
            Self::Invoice => "invoices",
            Self::Payment => "payments",
            Self::User => "users",
            Self::SecurityGroup => "security_groups",
        }
    }

    /// Accepts the singular or the plural name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.table() == s)
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::Session => "Session",
            Self::Appointment => "Appointment",
            Self::Invoice => "Invoice",
            Self::Payment => "Payment",
            Self::User => "User",
            Self::SecurityGroup => "Security group",
        }
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            Self::Client => Client::FIELDS,
            Self::Session => Session::FIELDS,
            Self::Appointment => Appointment::FIELDS,
            Self::Invoice => Invoice::FIELDS,
            Self::Payment => Payment::FIELDS,
            Self::User => User::FIELDS,
            Self::SecurityGroup => SecurityGroup::FIELDS,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// The audit category its changes are logged under.
    pub fn category(self) -> Category {
        match self {
            Self::Client => Category::Clients,
            Self::Session => Category::Sessions,
            Self::Appointment => Category::Appointments,
            Self::Invoice => Category::Invoices,
            Self::Payment => Category::Payments,
            Self::User | Self::SecurityGroup => Category::UserAuthentication,
        }
    }

    /// The numbered field the ledger assigns on create, and the first number.
    pub fn numbering(self) -> Option<(&'static str, i64)> {
        match self {
            Self::Client => Some(("number", 1001)),
            Self::Session => Some(("number", 5001)),
            Self::Invoice => Some(("number", 10001)),
            _ => None,
        }
    }

    /// Whether records of this kind are locked by posting.
    pub fn postable(self) -> bool {
        matches!(self, Self::Invoice | Self::Payment)
    }

    /// Checks that `fields` make a valid record of this kind and returns them in canonical
    /// form, or every problem found, each naming its field.
    pub fn normalize(self, fields: &Fields) -> Result<Fields, Vec<FieldError>> {
        match self {
            Self::Client => normalize_as::<Client>(fields),
            Self::Session => normalize_as::<Session>(fields),
            Self::Appointment => normalize_as::<Appointment>(fields),
            Self::Invoice => normalize_as::<Invoice>(fields),
            Self::Payment => normalize_as::<Payment>(fields),
            Self::User => normalize_as::<User>(fields),
            Self::SecurityGroup => normalize_as::<SecurityGroup>(fields),
        }
    }

    /// The human name of a record in the log: "Client #1042 Jane Smith".
    pub fn label(self, id: i64, fields: &Fields) -> String {
        let text = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or("");
        let number = fields.get("number").and_then(Value::as_i64);
        match (self, number) {
            (Self::Client, Some(n)) => {
                format!("Client #{n} {} {}", text("first_name"), text("last_name"))
                    .trim_end()
                    .to_owned()
            }
            (Self::User, _) => format!("User {} ({})", text("initials"), text("display_name")),
            (Self::SecurityGroup, _) => format!("Security group {}", text("name")),
            (_, Some(n)) => format!("{} #{n}", self.title()),
            (_, None) => format!("{} {id}", self.title()),
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What each record type adds to the shared field rules.
pub trait Record: Serialize + DeserializeOwned {
    const FIELDS: &'static [Field];
    /// Rules that span fields (end after start, totals that fit) and normal forms (lower-case
    /// emails, upper-case initials); field types are already checked when this runs.
    fn validate(&mut self, errors: &mut Vec<FieldError>);
}

/// Checks a caller's input against the field table: unknown fields, fields the caller may
/// not set, and each value's type. Returns the values in canonical form.
pub fn check_input(
    kind: RecordKind,
    input: &Fields,
    creating: bool,
) -> Result<Fields, Vec<FieldError>> {
    let mut out = Fields::new();
    let mut errors = Vec::new();
    for (name, value) in input {
        let Some(field) = kind.field(name) else {
            errors.push(FieldError::new(name, "is not a field of this record"));
            continue;
        };
        match (field.access, creating) {
            (Access::System, _) => {
                errors.push(FieldError::new(name, "is set by the system"));
                continue;
            }
            (Access::CreateOnly, false) => {
                errors.push(FieldError::new(name, "cannot be changed once set"));
                continue;
            }
            _ => {}
        }
        match field.check(value) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn normalize_as<T: Record>(fields: &Fields) -> Result<Fields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut full = Fields::new();
    for field in T::FIELDS {
        let value = fields.get(field.name).cloned().unwrap_or(Value::Null);
        match field.check(&value) {
            Ok(v) => {
                full.insert(field.name.to_owned(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut record: T = match serde_json::from_value(Value::Object(full)) {
        Ok(r) => r,
        Err(e) => return Err(vec![FieldError::new(nested_field::<T>(), e.to_string())]),
    };
    record.validate(&mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    match serde_json::to_value(&record) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(vec![FieldError::new("record", "could not be represented")]),
    }
}

/// Every flat field is checked before serde runs, so a serde error can only come from a
/// nested field (invoice lines).
fn nested_field<T: Record>() -> &'static str {
    T::FIELDS
        .iter()
        .find(|f| {
            matches!(
                f.ty,
                super::field::FieldType::Lines | super::field::FieldType::Grants
            )
        })
        .map_or("record", |f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The field table and the struct must describe the same fields, in the same order,
    /// or storage and validation would disagree.
    #[test]
    fn field_tables_match_the_structs() {
        let samples = [
            (
                RecordKind::Client,
                json!({"number": 1, "first_name": "A", "last_name": "B"}),
            ),
            (
                RecordKind::Session,
                json!({"number": 1, "client_id": 1, "session_type_id": 1, "session_status_id": 1,
                       "starts_at": "2026-01-01T10:00:00Z", "ends_at": "2026-01-01T11:00:00Z"}),
            ),
            (
                RecordKind::Appointment,
                json!({"appointment_type_id": 1, "starts_at": "2026-01-01T10:00:00Z",
                       "ends_at": "2026-01-01T11:00:00Z"}),
            ),
            (
                RecordKind::Invoice,
                json!({"number": 1, "client_id": 1, "invoice_date": "2026-01-01", "lines": []}),
            ),
            (
                RecordKind::Payment,
                json!({"invoice_id": 1, "amount_cents": 100, "payment_method_id": 1,
                       "paid_on": "2026-01-01"}),
            ),
            (
                RecordKind::User,
                json!({"username": "mary", "display_name": "Mary", "initials": "MKH",
                       "security_group": "staff", "password_hash": "x"}),
            ),
            (
                RecordKind::SecurityGroup,
                json!({"name": "front_desk", "permissions": {"clients": "view"}}),
            ),
        ];
        for (kind, sample) in samples {
            let map = kind.normalize(sample.as_object().unwrap()).unwrap();
            let names: Vec<_> = map.keys().cloned().collect();
            let mut expected: Vec<_> = kind.fields().iter().map(|f| f.name.to_owned()).collect();
            expected.sort();
            let mut names_sorted = names.clone();
            names_sorted.sort();
            assert_eq!(names_sorted, expected, "{kind}");
        }
    }

    #[test]
    fn unknown_and_system_fields_are_named() {
        let err = check_input(
            RecordKind::Client,
            json!({"nickname": "x", "number": 5}).as_object().unwrap(),
            true,
        )
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["nickname", "number"]);
    }

    #[test]
    fn labels() {
        let f = json!({"number": 1042, "first_name": "Jane", "last_name": "Smith"});
        assert_eq!(
            RecordKind::Client.label(7, f.as_object().unwrap()),
            "Client #1042 Jane Smith"
        );
        assert_eq!(RecordKind::Payment.label(7, &Fields::new()), "Payment 7");
    }
}
