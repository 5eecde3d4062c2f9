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
    /// Adds a line (or lines) below a record's notes as a new revision, stamped with the
    /// actor's time stamp when `stamp`. It changes nothing saved, so unlike a save it
    /// names no base revision: two people adding at once both land, one after the other.
    AppendNotes {
        kind: RecordKind,
        id: i64,
        text: String,
        stamp: bool,
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
    /// log's first entry. On every start it also adds default security groups if none exist.
    Install,
    /// The actor signed in with their password: a browser session begins.
    SignIn {
        session: NewSession,
    },
    /// A sign-in failed; counted toward the lockout of the name typed and the address.
    SignInFailed {
        username: String,
        /// The account the name belongs to, if any.
        user_id: Option<i64>,
        ip: String,
        outcome: String,
    },
    /// The actor (or the session's idle or absolute timeout) ended a session.
    SignOut {
        id_hash: String,
    },
    /// Keeps a session alive (not logged: it would drown the log).
    TouchSession {
        id_hash: String,
    },
    /// An API token for the actor; only its hash is given and kept.
    CreateToken {
        name: String,
        hash: String,
    },
    RevokeToken {
        id: i64,
    },
    /// Records a token's last use (not logged).
    TouchToken {
        id: i64,
    },
    /// A manager's credentials given for an override did not check out.
    OverrideFailed {
        username: String,
        ip: String,
        outcome: String,
    },
    /// A request the actor had no permission for (recorded, rate-limited by the caller).
    Denied {
        permission: String,
        action: String,
        record: Option<(RecordKind, i64)>,
    },
    /// Moves the bodies of the oldest entries timed before `before` (at most
    /// [`MAX_ARCHIVE`] a run) into a signed archive file at `out` (or, if `out` is a
    /// directory, a file named after the entries in it), made durable before the commit.
    /// Appends a System entry and a checkpoint first. Needs the signing key.
    Archive {
        before: jiff::Timestamp,
        out: std::path::PathBuf,
    },
}

impl Command {
    /// Whether it may change what a signed-in user or an API token may do: a user's or a
    /// security group's record, a password, a revoked token. Servers that keep what they
    /// looked up about a token forget it after such a command (see `web::known_tokens`).
    pub fn changes_access(&self) -> bool {
        match self {
            Self::Create { kind, .. }
            | Self::Update { kind, .. }
            | Self::Delete { kind, .. }
            | Self::Restore { kind, .. } => {
                matches!(kind, RecordKind::User | RecordKind::SecurityGroup)
            }
            Self::CreateUser { .. } | Self::SetPassword { .. } | Self::RevokeToken { .. } => true,
            _ => false,
        }
    }

    /// Whether the command signs the tree: the writer then reads the tree it left back
    /// from the database first, so that a change made behind its back stops the signing.
    pub fn signs(&self) -> bool {
        matches!(self, Self::Checkpoint | Self::Archive { .. })
    }

    /// Whether it does something outside the database (archiving writes a file), which a
    /// rolled-back attempt could not take back: its batch is never run twice.
    pub(crate) fn reaches_outside(&self) -> bool {
        matches!(self, Self::Archive { .. })
    }

    /// The record it reads first, when it names one: the writer on PostgreSQL reads a
    /// batch's records in one statement instead of one round trip per command.
    pub(crate) fn target(&self) -> Option<(RecordKind, i64)> {
        match self {
            Self::Update { kind, id, .. }
            | Self::Delete { kind, id, .. }
            | Self::Restore { kind, id }
            | Self::Post { kind, id }
            | Self::Unlock { kind, id }
            | Self::SaveNotes { kind, id, .. }
            | Self::AppendNotes { kind, id, .. }
            | Self::RecordCommunication { kind, id, .. } => Some((*kind, *id)),
            Self::VoidPayment { id } => Some((RecordKind::Payment, *id)),
            _ => None,
        }
    }

    /// Whether it reads its target's notes first (see [`Command::target`]).
    pub(crate) fn reads_notes(&self) -> bool {
        matches!(self, Self::SaveNotes { .. } | Self::AppendNotes { .. })
    }

    /// Whether it leaves every user and security group as it found them, so the actors
    /// the writer resolved before it still hold after it (failed or not).
    pub(crate) fn keeps_actors(&self) -> bool {
        let people =
            |kind: &RecordKind| matches!(kind, RecordKind::User | RecordKind::SecurityGroup);
        match self {
            Self::Create { kind, .. }
            | Self::Update { kind, .. }
            | Self::Delete { kind, .. }
            | Self::Restore { kind, .. } => !people(kind),
            Self::Post { .. }
            | Self::Unlock { .. }
            | Self::VoidPayment { .. }
            | Self::SaveNotes { .. }
            | Self::AppendNotes { .. }
            | Self::RecordCommunication { .. }
            | Self::TouchSession { .. }
            | Self::TouchToken { .. }
            | Self::Checkpoint => true,
            _ => false,
        }
    }
}

/// The most entries one archive run moves: a bound on the memory it takes and on how
/// long it holds the writer.
pub const MAX_ARCHIVE: i64 = 100_000;

/// What an archive run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archived {
    /// The entries `[first, end)` whose bodies are now in `file`.
    pub first: i64,
    pub end: i64,
    pub file: std::path::PathBuf,
    /// More entries are older than the cut than one run takes: run again.
    pub more: bool,
}

/// A browser session as the ledger stores it: the secret's hash, never the secret.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id_hash: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorRef {
    User(i64),
    /// The system by itself (SPSA).
    System,
    /// A named rule: a trigger, a scheduled job, an import.
    Automation(String),
    /// Someone not signed in: a failed sign-in.
    Anonymous,
}

/// An `Idempotency-Key` with the hash of the request it came with: a retry of the same
/// request answers the first result; another request under the same key is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// Who asks, on whose authority, why, and from where.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: ActorRef,
    /// A manager whose credentials allow what the actor may not do alone.
    pub authorized_by: Option<i64>,
    pub reason: Option<String>,
    pub request: Option<Request>,
    pub idempotency: Option<Idempotency>,
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
            idempotency: None,
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
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = Some(idempotency);
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
    /// The latest notes revision after a notes save: the one it made, or the one it matched.
    pub notes_revision: Option<i64>,
    /// The notes' text after a notes save, as stored (line ends normalised).
    pub notes_text: Option<String>,
    /// The signed note a checkpoint made.
    pub checkpoint: Option<String>,
    /// What an archive run moved, and where.
    pub archived: Option<Archived>,
    /// The id of the API token made.
    pub token_id: Option<i64>,
    /// The answer was the first result of an earlier request with the same key.
    pub replayed: bool,
}
