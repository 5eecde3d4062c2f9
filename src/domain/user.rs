//! Users: the people who sign in, whose initials stamp their notes and name them in the log.

use serde::{Deserialize, Serialize};

use super::{
    field::{Field, FieldError, FieldType, check_email},
    record::Record,
    security_group::check_group_name,
};

/// The initials that mark what the system did by itself, as in Spectra.
pub const SYSTEM_INITIALS: &str = "SPSA";
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub display_name: String,
    pub initials: String,
    pub email: Option<String>,
    pub security_group: String,
    pub active: bool,
    pub password_hash: String,
    /// Per-user exceptions laid over the group's permissions.
    pub permissions: Option<serde_json::Value>,
}

impl Record for User {
    const FIELDS: &'static [Field] = &[
        Field::new("username", FieldType::Text { max: 32 })
            .required()
            .unique(),
        Field::new("display_name", FieldType::Text { max: 100 }).required(),
        Field::new("initials", FieldType::Text { max: 4 })
            .required()
            .unique(),
        Field::new("email", FieldType::Text { max: 254 }),
        Field::new("security_group", FieldType::Text { max: 40 }).required(),
        Field::new("active", FieldType::Bool),
        Field::new("password_hash", FieldType::Text { max: 200 })
            .required()
            .system()
            .secret(),
        Field::new("permissions", FieldType::Grants),
    ];

    fn validate(&mut self, errors: &mut Vec<FieldError>) {
        self.username = self.username.to_lowercase();
        if self.username.len() < 2
            || !self
                .username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            errors.push(FieldError::new(
                "username",
                "must be 2 to 32 letters, digits, dots, dashes or underscores",
            ));
        }
        self.initials = self.initials.to_uppercase();
        if !(2..=4).contains(&self.initials.len())
            || !self.initials.chars().all(|c| c.is_ascii_uppercase())
        {
            errors.push(FieldError::new("initials", "must be 2 to 4 letters"));
        } else if self.initials == SYSTEM_INITIALS {
            errors.push(FieldError::new(
                "initials",
                "SPSA is reserved for the system",
            ));
        }
        if let Some(email) = &mut self.email {
            *email = email.to_lowercase();
            check_email("email", email, errors);
        }
        self.security_group = self.security_group.to_lowercase();
        check_group_name("security_group", &self.security_group, errors);
    }
}

/// Passwords are never empty (Spectra allowed that) and long enough to resist guessing.
pub fn check_password(password: &str) -> Result<(), FieldError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(FieldError::new(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ))
    } else if password.len() > 1024 {
        Err(FieldError::new("password", "is too long"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::RecordKind;
    use serde_json::json;

    #[test]
    fn initials_are_upper_cased_and_spsa_is_reserved() {
        let base = json!({"username": "Mary", "display_name": "Mary K Hill", "initials": "mkh",
                          "security_group": "staff", "password_hash": "h"});
        let ok = RecordKind::User
            .normalize(base.as_object().unwrap())
            .unwrap();
        assert_eq!(ok["initials"], "MKH");
        assert_eq!(ok["username"], "mary");
        let mut spsa = base.clone();
        spsa["initials"] = json!("spsa");
        let err = RecordKind::User
            .normalize(spsa.as_object().unwrap())
            .unwrap_err();
        assert_eq!(err[0].field, "initials");
        let mut group = base;
        group["security_group"] = json!("the boss");
        let err = RecordKind::User
            .normalize(group.as_object().unwrap())
            .unwrap_err();
        assert_eq!(err[0].field, "security_group");
    }

    #[test]
    fn passwords_are_never_empty() {
        assert!(check_password("").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("correct horse").is_ok());
    }
}
