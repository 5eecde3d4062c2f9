//! Security groups: named sets of permissions; every user belongs to exactly one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    field::{Field, FieldError, FieldType},
    record::Record,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub name: String,
    pub description: Option<String>,
    pub permissions: Option<Value>,
}

impl Record for SecurityGroup {
    const FIELDS: &'static [Field] = &[
        // Users name their group, so the name never changes once given.
        Field::new("name", FieldType::Text { max: 40 })
            .required()
            .unique()
            .create_only(),
        Field::new("description", FieldType::Text { max: 200 }),
        Field::new("permissions", FieldType::Grants),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        self.name = self.name.to_lowercase();
        check_group_name("name", &self.name, errors);
        // A new group has no access until someone grants it (least privilege).
        if self.permissions.is_none() {
            self.permissions = Some(Value::Object(Default::default()));
        }
    }
}

/// Group names are lower-case words (`front_desk`), so they read well in URLs and logs.
pub fn check_group_name(field: &str, name: &str, errors: &mut Vec<FieldError>) {
    if !(2..=40).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        errors.push(FieldError::new(
            field,
            "must be 2 to 40 lower-case letters, digits, dashes or underscores",
        ));
    }
}
