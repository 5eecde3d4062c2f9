//! Clients: the people and businesses a studio photographs and bills.

use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType, check_email, check_phone},
    list::ListKind,
    record::Record,
};

const NAME: FieldType = FieldType::Text { max: 100 };

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub number: i64,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub street: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub client_status_id: Option<i64>,
    pub do_not_market: bool,
}

impl Record for Client {
    const FIELDS: &'static [Field] = &[
        Field::new("number", FieldType::Int)
            .required()
            .system()
            .unique(),
        Field::new("first_name", NAME),
        Field::new("last_name", NAME).required(),
        Field::new("email", FieldType::Text { max: 254 }),
        Field::new("phone", FieldType::Text { max: 30 }),
        Field::new("mobile", FieldType::Text { max: 30 }),
        Field::new("street", FieldType::Text { max: 200 }),
        Field::new("city", NAME),
        Field::new("region", NAME),
        Field::new("postal_code", FieldType::Text { max: 20 }),
        Field::new(
            "client_status_id",
            FieldType::Choice(ListKind::ClientStatus),
        ),
        Field::new("do_not_market", FieldType::Bool),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        if let Some(email) = &mut self.email {
            *email = email.to_lowercase();
            check_email("email", email, errors);
        }
        for (name, phone) in [("phone", &self.phone), ("mobile", &self.mobile)] {
            if let Some(phone) = phone {
                check_phone(name, phone, errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::record::RecordKind;
    use serde_json::json;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        let ok = RecordKind::Client
            .normalize(
                json!({"number": 1, "last_name": "Smith", "email": "Jane@Example.COM"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(ok["email"], "jane@example.com");
        assert_eq!(ok["do_not_market"], false);
        let err = RecordKind::Client
            .normalize(
                json!({"number": 1, "last_name": "Smith", "email": "jane", "phone": "12"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "phone"]);
    }
}
