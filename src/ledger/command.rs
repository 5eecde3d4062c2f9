//! What can be asked of the ledger, by whom, and what it answers.

use crate::domain::{
    audit::{Category, Request},
    record::{Fields, RecordKind},
};
use crate::store::records::StoredRecord;

/// Every change to the studio's data is one of these.
#[derive(Clone, Debug)]
pub enum Command {
    Create {
        kind: RecordKind,
        fields: Fields,
    },
    /// Sets the given fields; the rest stay as they are.
    Update {
        kind: RecordKind,
        id: i64,
        fields: Fields,
        /// The version the caller saw; a newer one means someone else saved first.
        expected_version: Option<i64>,
    },
    /// Soft delete: the record is tombstoned and the log keeps its full snapshot.
    Delete {
        kind: RecordKind,
        id: i64,
        expected_version: Option<i64>,
    },
    Restore {
        kind: RecordKind,
        id: i64,
    },
    /// End of day: locks an invoice or payment.
    Post {
        kind: RecordKind,
        id: i64,
    },
    Unlock {
        kind: RecordKind,
        id: i64,
    },
    /// Voids an unposted payment (posted money is corrected by a refund instead).
    VoidPayment {
        id: i64,
    },
    /// A new user; the password is hashed before it reaches the writer.
    CreateUser {
        fields: Fields,
        password_hash: String,
    },
    SetPassword {
        user_id: i64,
        password_hash: String,
    },
    /// Preferences > Audit Logging: one category's switch.
    SetAuditLogging {
        category: Category,
        enabled: bool,
    },
    /// A studio preference (time zone, stamp format, which changes need a reason).
    SetPreference {
        key: String,
        value: String,
    },
    /// Saves a record's notes as a new revision. `base_revision` is the revision the
    /// editor started from (0 for none): if someone saved since, nothing is written.
    SaveNotes {
        kind: RecordKind,
        id: i64,
        text: String,
        base_revision: i64,
    },
    /// A communication about a record was sent: logged, with a status note.
    RecordCommunication {
        kind: RecordKind,
        id: i64,
        channel: String,
        subject: String,
        /// The route, e.g. `Trigger "Session reminder"` or `the Communication Wizard`.
        via: Option<String>,
    },
    /// Signs a checkpoint of the log as it stands, after appending a System entry that
    /// records the moment. Needs the ledger to have been started with a signing key.
    Checkpoint,
    /// A server started (logged with whether the previous run ended cleanly) or stopped.
    Lifecycle {
        starting: bool,
    },
    /// Run once by the ledger on a new database: default lists, the log's origin, and the
    /// log's first entry.
    Install,
}

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorRef {
    User(i64),
    /// The system by itself (SPSA).
    System,
    /// A named rule: a trigger, a scheduled job, an import.
    Automation(String),
}

/// Who asks, on whose authority, why, and from where.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: ActorRef,
    /// A manager whose credentials allow what the actor may not do alone.
    pub authorized_by: Option<i64>,
    pub reason: Option<String>,
    pub request: Option<Request>,
}

impl Context {
    pub fn user(id: i64) -> Self {
        Self::new(ActorRef::User(id))
    }
    pub fn system() -> Self {
        Self::new(ActorRef::System)
    }
    pub fn new(actor: ActorRef) -> Self {
        Self {
            actor,
            authorized_by: None,
            reason: None,
            request: None,
        }
    }
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    pub fn authorized_by(mut self, user_id: i64) -> Self {
        self.authorized_by = Some(user_id);
        self
    }
    pub fn with_request(mut self, request: Request) -> Self {
        self.request = Some(request);
        self
    }
}

/// What a command did, answered only after it is durable.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The record as it is now, for record commands.
    pub record: Option<StoredRecord>,
    /// False when the command changed nothing (and so wrote nothing).
    pub changed: bool,
    /// The audit entry's index, when the change was logged.
    pub audit_index: Option<i64>,
    /// The notes revision a notes save made.
    pub notes_revision: Option<i64>,
    /// The signed note a checkpoint made.
    pub checkpoint: Option<String>,
}
