//! Why a command wrote nothing.

use crate::domain::{
    field::FieldError, permission::Permission, reason::ReasonRule, record::RecordKind,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {}", list(.0))]
    Invalid(Vec<FieldError>),
    #[error("{kind} {id} does not exist")]
    NotFound { kind: RecordKind, id: i64 },
    #[error("{label} was changed by someone else (now version {current_version})")]
    Conflict { label: String, current_version: i64 },
    #[error("{label} is deleted; restore it first")]
    Deleted { label: String },
    #[error("{label} is {state}; {hint}")]
    Locked {
        label: String,
        state: &'static str,
        hint: &'static str,
    },
    #[error("{0}")]
    InUse(String),
    #[error("a reason is needed for this change ({})", rules.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
    ReasonRequired { rules: Vec<ReasonRule> },
    #[error("{author} saved these notes since you opened them (now revision {revision})")]
    NotesConflict {
        revision: i64,
        author: String,
        /// The notes as the other person saved them.
        text: String,
    },
    #[error("not allowed: needs the {0} permission")]
    Forbidden(Permission),
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    #[error("not allowed: {0}")]
    NotPermitted(String),
    #[error("storage failed: {0}")]
    Store(#[from] crate::store::Error),
    #[error("the audit log was changed outside Keeptrack ({0}); run keeptrack audit verify")]
    Tampered(String),
    #[error("the change was not saved: {0}")]
    NotSaved(String),
    #[error("the ledger is not running")]
    Unavailable,
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// Whether the storage failed (or was found tampered with) rather than the command
    /// being refused: what it wrote before then cannot be assumed to be nothing.
    pub(crate) fn is_storage(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Tampered(_) | Self::NotSaved(_) | Self::Unavailable
        )
    }
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
