//! Security groups' permissions: a level per feature, as in Spectra, with per-user
//! exceptions. Unlike Spectra, security is always on and anything not granted is denied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{field::FieldError, reason::ReasonRule, record::RecordKind};

/// What a permission governs: a kind of record, or one capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Clients,
    Sessions,
    Appointments,
    Invoices,
    Payments,
    /// Change text already saved in a record's notes (Spectra's "Client Notes").
    ClientNotes,
    InvoiceDiscountOverride,
    InvoicePriceOverride,
    InvoiceDateOverride,
    /// Unlock a posted invoice or payment.
    UnlockPosted,
    /// Post invoices and payments (Spectra's End of Day).
    EndOfDay,
    /// Delete and restore records of any kind (on top of the record kind's own level).
    DeleteRecords,
    AuditLogs,
    Preferences,
    UsersAndSecurity,
    CommunicationWizard,
}

impl Feature {
    pub const ALL: [Self; 16] = [
        Self::Clients,
        Self::Sessions,
        Self::Appointments,
        Self::Invoices,
        Self::Payments,
        Self::ClientNotes,
        Self::InvoiceDiscountOverride,
        Self::InvoicePriceOverride,
        Self::InvoiceDateOverride,
        Self::UnlockPosted,
        Self::EndOfDay,
        Self::DeleteRecords,
        Self::AuditLogs,
        Self::Preferences,
        Self::UsersAndSecurity,
        Self::CommunicationWizard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clients => "clients",
            Self::Sessions => "sessions",
            Self::Appointments => "appointments",
            Self::Invoices => "invoices",
            Self::Payments => "payments",
            Self::ClientNotes => "client_notes",
            Self::InvoiceDiscountOverride => "invoice_discount_override",
            Self::InvoicePriceOverride => "invoice_price_override",
            Self::InvoiceDateOverride => "invoice_date_override",
            Self::UnlockPosted => "unlock_posted",
            Self::EndOfDay => "end_of_day",
            Self::DeleteRecords => "delete_records",
            Self::AuditLogs => "audit_logs",
            Self::Preferences => "preferences",
            Self::UsersAndSecurity => "users_and_security",
            Self::CommunicationWizard => "communication_wizard",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// A capability is either granted or not: its only levels are none and full.
    pub fn is_capability(self) -> bool {
        !matches!(
            self,
            Self::Clients
                | Self::Sessions
                | Self::Appointments
                | Self::Invoices
                | Self::Payments
                | Self::AuditLogs
                | Self::Preferences
                | Self::UsersAndSecurity
        )
    }

    /// The feature that governs records of a kind.
    pub fn of_kind(kind: RecordKind) -> Self {
        match kind {
            RecordKind::Client => Self::Clients,
            RecordKind::Session => Self::Sessions,
            RecordKind::Appointment => Self::Appointments,
            RecordKind::Invoice => Self::Invoices,
            RecordKind::Payment => Self::Payments,
            RecordKind::User | RecordKind::SecurityGroup => Self::UsersAndSecurity,
        }
    }

    /// The override capability a change that triggers `rule` also needs, if any.
    pub fn for_override(rule: ReasonRule) -> Option<Self> {
        match rule {
            ReasonRule::InvoiceDiscount => Some(Self::InvoiceDiscountOverride),
            ReasonRule::InvoicePrice => Some(Self::InvoicePriceOverride),
            ReasonRule::InvoiceDate => Some(Self::InvoiceDateOverride),
            _ => None,
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Spectra's levels, each including the ones before it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    None,
    View,
    Add,
    Modify,
    Delete,
    Full,
}

impl Level {
    pub const ALL: [Self; 6] = [
        Self::None,
        Self::View,
        Self::Add,
        Self::Modify,
        Self::Delete,
        Self::Full,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::View => "view",
            Self::Add => "add",
            Self::Modify => "modify",
            Self::Delete => "delete",
            Self::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The words Spectra's security screen uses.
    pub fn title(self) -> &'static str {
        match self {
            Self::None => "No access",
            Self::View => "View only",
            Self::Add => "Add only",
            Self::Modify => "Add/Modify",
            Self::Delete => "Add/Modify/Delete",
            Self::Full => "Full access",
        }
    }
}

/// One permission as the ledger checks it and the log names it: `clients:delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub feature: Feature,
    pub level: Level,
}

impl Permission {
    pub fn new(feature: Feature, level: Level) -> Self {
        // A capability has one level that grants it.
        let level = if feature.is_capability() {
            Level::Full
        } else {
            level
        };
        Self { feature, level }
    }
    pub fn capability(feature: Feature) -> Self {
        Self::new(feature, Level::Full)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.feature.is_capability() {
            f.write_str(self.feature.as_str())
        } else {
            write!(f, "{}:{}", self.feature, self.level.as_str())
        }
    }
}

/// A level per feature; a feature not listed has no access.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(BTreeMap<Feature, Level>);

impl Grants {
    pub fn level(&self, feature: Feature) -> Level {
        self.0.get(&feature).copied().unwrap_or_default()
    }

    pub fn allows(&self, p: Permission) -> bool {
        self.level(p.feature) >= p.level
    }

    pub fn set(&mut self, feature: Feature, level: Level) {
        self.0.insert(feature, level);
    }

    /// These grants with a user's exceptions laid over them, feature by feature.
    pub fn with_exceptions(mut self, exceptions: &Grants) -> Self {
        for (f, l) in &exceptions.0 {
            self.0.insert(*f, *l);
        }
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (Feature, Level)> + '_ {
        self.0.iter().map(|(f, l)| (*f, *l))
    }

    /// Reads `{"clients": "modify", ...}`, naming each bad entry as `field.feature`.
    pub fn parse(field: &str, value: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(map) = value.as_object() else {
            return Err(vec![FieldError::new(
                field,
                "must be an object of feature: level",
            )]);
        };
        let mut grants = Self::default();
        let mut errors = Vec::new();
        for (name, level) in map {
            let at = format!("{field}.{name}");
            let Some(feature) = Feature::parse(name) else {
                errors.push(FieldError::new(at, "is not a feature"));
                continue;
            };
            match level.as_str().and_then(Level::parse) {
                None => errors.push(FieldError::new(
                    at,
                    "must be none, view, add, modify, delete or full",
                )),
                Some(l) if feature.is_capability() && !matches!(l, Level::None | Level::Full) => {
                    errors.push(FieldError::new(at, "is a capability: none or full"));
                }
                Some(l) => grants.set(feature, l),
            }
        }
        if errors.is_empty() {
            Ok(grants)
        } else {
            Err(errors)
        }
    }

    /// Every feature with its level, so the stored form says "none" rather than leaving
    /// a reader to guess.
    pub fn to_value(&self) -> Value {
        Value::Object(
            Feature::ALL
                .iter()
                .map(|f| (f.as_str().to_owned(), self.level(*f).as_str().into()))
                .collect(),
        )
    }

    /// Only the listed features (for per-user exceptions).
    pub fn to_sparse_value(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(f, l)| (f.as_str().to_owned(), l.as_str().into()))
                .collect(),
        )
    }
}

/// What a user may do: their group's grants (none if the group is gone) with their own
/// exceptions laid over them. Stored values were checked when saved; anything unreadable
/// grants nothing.
pub fn effective(group: Option<&Value>, exceptions: Option<&Value>) -> Grants {
    let read = |v: Option<&Value>| {
        v.filter(|v| !v.is_null())
            .and_then(|v| Grants::parse("permissions", v).ok())
            .unwrap_or_default()
    };
    read(group).with_exceptions(&read(exceptions))
}

/// The groups a new studio starts with.
pub const DEFAULT_GROUPS: [&str; 3] = ["owner", "manager", "staff"];

/// Owner: everything. Manager: everything but Users and Security. Staff: add and modify
/// the studio's records, nothing else.
pub fn default_grants(group: &str) -> Grants {
    let mut g = Grants::default();
    match group {
        "owner" => Feature::ALL.iter().for_each(|f| g.set(*f, Level::Full)),
        "manager" => Feature::ALL
            .iter()
            .filter(|f| **f != Feature::UsersAndSecurity)
            .for_each(|f| g.set(*f, Level::Full)),
        "staff" => [
            Feature::Clients,
            Feature::Sessions,
            Feature::Appointments,
            Feature::Invoices,
            Feature::Payments,
        ]
        .iter()
        .for_each(|f| g.set(*f, Level::Modify)),
        _ => {}
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_issue() {
        let owner = default_grants("owner");
        let manager = default_grants("manager");
        let staff = default_grants("staff");
        let users = Permission::new(Feature::UsersAndSecurity, Level::View);
        assert!(owner.allows(users));
        assert!(!manager.allows(users));
        assert!(manager.allows(Permission::capability(Feature::UnlockPosted)));
        let edit_client = Permission::new(Feature::Clients, Level::Modify);
        assert!(staff.allows(edit_client));
        for denied in [
            Permission::new(Feature::Clients, Level::Delete),
            Permission::capability(Feature::DeleteRecords),
            Permission::capability(Feature::InvoiceDiscountOverride),
            Permission::capability(Feature::UnlockPosted),
            Permission::new(Feature::AuditLogs, Level::View),
            Permission::new(Feature::Preferences, Level::View),
        ] {
            assert!(!staff.allows(denied), "{denied}");
        }
        assert_eq!(default_grants("a new group"), Grants::default());
    }

    #[test]
    fn levels_include_the_ones_below() {
        let mut g = Grants::default();
        g.set(Feature::Sessions, Level::Add);
        assert!(g.allows(Permission::new(Feature::Sessions, Level::View)));
        assert!(g.allows(Permission::new(Feature::Sessions, Level::Add)));
        assert!(!g.allows(Permission::new(Feature::Sessions, Level::Modify)));
    }

    #[test]
    fn user_exceptions_override_their_group() {
        let mut ex = Grants::default();
        ex.set(Feature::UnlockPosted, Level::Full);
        ex.set(Feature::Clients, Level::View);
        let g = default_grants("staff").with_exceptions(&ex);
        assert!(g.allows(Permission::capability(Feature::UnlockPosted)));
        assert!(!g.allows(Permission::new(Feature::Clients, Level::Add)));
    }

    #[test]
    fn parse_names_each_bad_entry() {
        let bad =
            json!({"clients": "modify", "boats": "full", "unlock_posted": "view", "sessions": 3});
        let errs = Grants::parse("permissions", &bad).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "permissions.boats",
                "permissions.sessions",
                "permissions.unlock_posted"
            ]
        );
        let ok = Grants::parse("permissions", &json!({"clients": "delete"})).unwrap();
        assert_eq!(ok.level(Feature::Clients), Level::Delete);
        assert_eq!(ok.to_value()["payments"], "none");
        assert!(Grants::parse("permissions", &json!([])).is_err());
    }

    #[test]
    fn names_in_the_log() {
        assert_eq!(
            Permission::new(Feature::Clients, Level::Delete).to_string(),
            "clients:delete"
        );
        assert_eq!(
            Permission::new(Feature::UnlockPosted, Level::View).to_string(),
            "unlock_posted"
        );
    }
}
