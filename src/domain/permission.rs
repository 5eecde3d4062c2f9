//! Security groups and what each may do without a manager's override.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Owner,
    Manager,
    Staff,
}

impl Group {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Self::Owner),
            "manager" => Some(Self::Manager),
            "staff" => Some(Self::Staff),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::Staff => "staff",
        }
    }
}

/// The permissions the ledger checks itself; the per-feature levels of the API build on
/// these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Soft-delete and restore records.
    DeleteRecords,
    /// Unlock a posted invoice or payment.
    UnlockPosted,
    /// Post invoices and payments (end of day).
    Post,
    /// Change preferences, including audit logging switches.
    Preferences,
    /// Add and change users.
    UsersAndSecurity,
    /// Read the audit trail.
    AuditLogs,
    /// Change text already saved in any record's notes (Spectra's "Client Notes").
    ClientNotes,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeleteRecords => "delete_records",
            Self::UnlockPosted => "unlock_posted",
            Self::Post => "post",
            Self::Preferences => "preferences",
            Self::UsersAndSecurity => "users_and_security",
            Self::AuditLogs => "audit_logs",
            Self::ClientNotes => "client_notes",
        }
    }
}

/// Owner: everything. Manager: everything but users and security. Staff: none of these.
pub fn allows(group: Group, permission: Permission) -> bool {
    match group {
        Group::Owner => true,
        Group::Manager => permission != Permission::UsersAndSecurity,
        Group::Staff => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_for_staff() {
        assert!(allows(Group::Owner, Permission::UsersAndSecurity));
        assert!(!allows(Group::Manager, Permission::UsersAndSecurity));
        assert!(allows(Group::Manager, Permission::UnlockPosted));
        assert!(!allows(Group::Staff, Permission::DeleteRecords));
    }
}
