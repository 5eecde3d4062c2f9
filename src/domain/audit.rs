//! The audit entry: who did what to which record, what changed and why, serialised once
//! as canonical JSON (RFC 8785). Those bytes are what is stored, hashed and verified.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{diff::Change, record::Fields};

/// The schema version inside every entry.
pub const SCHEMA_VERSION: u32 = 1;

/// Spectra's Preferences > Audit Logging, plus the always-on System category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Appointments,
    Clients,
    Invoices,
    Payments,
    Sessions,
    UserAuthentication,
    InvoiceDiscounts,
    System,
}

impl Category {
    pub const ALL: [Self; 8] = [
        Self::Appointments,
        Self::Clients,
        Self::Invoices,
        Self::Payments,
        Self::Sessions,
        Self::UserAuthentication,
        Self::InvoiceDiscounts,
        Self::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appointments => "appointments",
            Self::Clients => "clients",
            Self::Invoices => "invoices",
            Self::Payments => "payments",
            Self::Sessions => "sessions",
            Self::UserAuthentication => "user_authentication",
            Self::InvoiceDiscounts => "invoice_discounts",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The name Spectra's preferences page uses.
    pub fn title(self) -> &'static str {
        match self {
            Self::Appointments => "Appointments",
            Self::Clients => "Clients",
            Self::Invoices => "Invoices",
            Self::Payments => "Payments",
            Self::Sessions => "Sessions",
            Self::UserAuthentication => "User Authentication (Security Overrides)",
            Self::InvoiceDiscounts => "Invoice Discounts Applied",
            Self::System => "System",
        }
    }

    /// System is always on, so that switching logging off is itself on record.
    pub fn switchable(self) -> bool {
        self != Self::System
    }

    /// The preference key holding the switch.
    pub fn preference_key(self) -> String {
        format!("audit.{}", self.as_str())
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Restore,
    Post,
    Unlock,
    Void,
    /// The database was created; the first entry of every log.
    Install,
    /// A preference (including an audit switch) changed.
    Preference,
    /// A record's notes were saved (a new revision).
    Notes,
    /// A communication (email, SMS, letter, call) was sent about a record.
    Communication,
    /// A signed checkpoint of the log was made; this entry puts its time in the tree.
    Checkpoint,
    /// The server started; says whether the previous run ended cleanly.
    Start,
    /// The server stopped cleanly.
    Stop,
    /// The writer found the log changed behind its back and will not sign it.
    Alarm,
    /// A user's password was set or changed.
    Password,
    SignIn,
    SignInFailed,
    SignOut,
    /// Too many failed sign-ins: the account or address must wait.
    Lockout,
    /// A manager's credentials allowed what the actor may not do alone.
    Override,
    OverrideFailed,
    /// A request was refused for want of a permission.
    Denied,
    TokenCreate,
    TokenRevoke,
    /// The wall clock read earlier than the log's last entry; entries carry the log's
    /// time until it catches up.
    ClockBackwards,
    /// Old entries' bodies moved to a signed archive file (their leaf hashes stay).
    Archive,
}

impl Action {
    pub const ALL: [Self; 27] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Restore,
        Self::Post,
        Self::Unlock,
        Self::Void,
        Self::Install,
        Self::Preference,
        Self::Notes,
        Self::Communication,
        Self::Checkpoint,
        Self::Start,
        Self::Stop,
        Self::Alarm,
        Self::Password,
        Self::SignIn,
        Self::SignInFailed,
        Self::SignOut,
        Self::Lockout,
        Self::Override,
        Self::OverrideFailed,
        Self::Denied,
        Self::TokenCreate,
        Self::TokenRevoke,
        Self::ClockBackwards,
        Self::Archive,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Restore => "restore",
            Self::Post => "post",
            Self::Unlock => "unlock",
            Self::Void => "void",
            Self::Install => "install",
            Self::Preference => "preference",
            Self::Notes => "notes",
            Self::Communication => "communication",
            Self::Checkpoint => "checkpoint",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Alarm => "alarm",
            Self::Password => "password",
            Self::SignIn => "sign_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignOut => "sign_out",
            Self::Lockout => "lockout",
            Self::Override => "override",
            Self::OverrideFailed => "override_failed",
            Self::Denied => "denied",
            Self::TokenCreate => "token_create",
            Self::TokenRevoke => "token_revoke",
            Self::ClockBackwards => "clock_backwards",
            Self::Archive => "archive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    /// The system acting by itself (SPSA).
    System,
    /// A rule acting on someone's behalf: a trigger, a scheduled job, an import.
    Automation,
    /// Someone not signed in (a failed sign-in).
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
            Self::Automation => "automation",
            Self::Anonymous => "anonymous",
        }
    }
}

/// Who acted, with initials and name as they were at that moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub initials: String,
    pub kind: ActorKind,
    pub name: String,
}

/// The manager whose credentials allowed an action the actor may not do alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authoriser {
    pub id: i64,
    pub initials: String,
    pub name: String,
    pub permission: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    pub id: i64,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Where a change came from, when it came over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
}

/// The facts of a User Authentication event: the name someone typed, the permission an
/// override was for and the action it allowed (or a denial refused), why it failed, the
/// token involved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A notes revision, named by number and the SHA-256 of its text, so the log vouches
/// for the notes without copying them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteRef {
    pub rev: i64,
    pub sha256: String,
}

/// What was sent, to whom it was about, and by which route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunicationRef {
    pub channel: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// One audit entry. Every struct in it declares its fields in the order of their keys
/// (`rec`'s `type`, `diff`'s `f` by the names they are written under), so that serde
/// writes them as RFC 8785 sorts them: see `to_canonical_bytes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub act: Action,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Authoriser>,
    pub cat: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<CommunicationRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<Change>,
    /// Position in the log, inside the bytes so that swapped rows fail on their own.
    pub i: i64,
    /// The log's origin, so an entry cannot be passed off as another studio's.
    pub log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<NoteRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rec: Option<RecordRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sec: Option<SecurityRef>,
    /// The whole record, on delete, so that nothing deleted is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snap: Option<Fields>,
    /// Microseconds since the Unix epoch, UTC.
    pub ts: i64,
    pub v: u32,
}

impl Entry {
    /// The canonical bytes (RFC 8785). Computed once, at append; never recomputed to verify.
    ///
    /// The writer builds one for every audited change. With its structs' fields declared
    /// in key order and every number and key plain (see `is_plain`), serde_json writing
    /// the entry itself gives RFC 8785's bytes, several times faster than building a
    /// `Value` to sort first (bench 4 of benches/log.rs); anything else takes the
    /// general path.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        if self.is_plain()
            && let Ok(bytes) = serde_json::to_vec(self)
        {
            return bytes;
        }
        // By the book: about 7 µs an entry (bench 4).
        serde_json_canonicalizer::to_vec(self).expect("entries hold only JSON-safe values")
    }

    /// Whether every number in the entry is an integer a double holds exactly, and every
    /// key of its free-form parts (changed values, snapshots) is ASCII.
    fn is_plain(&self) -> bool {
        let exact = |n: i64| n.unsigned_abs() <= 1 << 53;
        exact(self.i)
            && exact(self.ts)
            && self.actor.id.is_none_or(exact)
            && self.auth.as_ref().is_none_or(|a| exact(a.id))
            && self.rec.as_ref().is_none_or(|r| exact(r.id))
            && self.note.as_ref().is_none_or(|n| exact(n.rev))
            && self.sec.as_ref().and_then(|s| s.token).is_none_or(exact)
            && self
                .diff
                .iter()
                .all(|c| is_plain(&c.old) && is_plain(&c.new))
            && self
                .snap
                .as_ref()
                .is_none_or(|f| f.iter().all(|(k, v)| k.is_ascii() && is_plain(v)))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Whether serde_json writes `v` exactly as RFC 8785 does: every number an integer of at
/// most 2^53 in size (RFC 8785 writes numbers as doubles), every key ASCII (it sorts keys
/// by UTF-16 code units, which for ASCII is byte order, as `Map`'s is).
fn is_plain(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: u64 = 1 << 53;
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i64::unsigned_abs)
            .or(n.as_u64())
            .is_some_and(|m| m <= EXACT),
        Value::Array(items) => items.iter().all(is_plain),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && is_plain(v)),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

/// Lower-case hex SHA-256 of a text, as notes revisions are named in the log.
pub fn text_sha256(text: &str) -> String {
    super::digest::sha256_hex(text)
}

/// RFC 9162 leaf hash: SHA-256(0x00 || bytes).
pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Entry {
        Entry {
            v: SCHEMA_VERSION,
            log: "keeptrack.test/audit".into(),
            i: 7,
            ts: 1_539_874_804_000_000,
            cat: Category::Clients,
            act: Action::Update,
            actor: Actor {
                kind: ActorKind::User,
                id: Some(3),
                initials: "MKH".into(),
                name: "Mary K Hill".into(),
            },
            auth: None,
            rec: Some(RecordRef {
                kind: "client".into(),
                id: 12,
                label: "Client #1042 Jane Smith".into(),
            }),
            diff: vec![Change {
                field: "email".into(),
                old: json!("old@x.com"),
                new: json!("new@x.com"),
            }],
            snap: None,
            note: None,
            comm: None,
            sec: None,
            reason: Some("Client requested change 10/7/2018".into()),
            req: None,
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_and_omit_absent_parts() {
        let bytes = entry().to_canonical_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"act":"update","actor":{"id":3,"initials":"MKH","kind":"user","name":"Mary K Hill"},"cat":"clients","diff":[{"f":"email","new":"new@x.com","old":"old@x.com"}],"i":7,"log":"keeptrack.test/audit","reason":"Client requested change 10/7/2018","rec":{"id":12,"label":"Client #1042 Jane Smith","type":"client"},"ts":1539874804000000,"v":1}"#
        );
        assert_eq!(Entry::from_bytes(&bytes).unwrap(), entry());
    }

    #[test]
    fn leaf_hash_is_rfc9162() {
        // RFC 6962 test vector: the hash of the empty leaf.
        let h = leaf_hash(b"");
        assert_eq!(
            crate::domain::digest::hex(&h),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-(1i64 << 54)..(1i64 << 54)).prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![any::<String>(), "[a-z_A-Z0-9]{0,8}"],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(5_000))]
        /// An entry written straight from its structs is what the RFC 8785 canonicaliser
        /// writes: a field declared out of key order, or a number the direct path lets
        /// through that RFC 8785 writes otherwise, fails here.
        #[test]
        fn entry_bytes_are_rfc8785(
            e in crate::audit::scan::tests::entry(),
            big in proptest::prelude::any::<i64>(),
            value in json_value(),
            odd in 0..4u8,
        ) {
            let mut e = e;
            // A plain entry, or one with a number or a key RFC 8785 writes its own way.
            match odd {
                1 => e.i = big,
                2 => e.diff.push(Change { field: "f".into(), new: value, old: serde_json::Value::Null }),
                3 => {
                    e.snap.get_or_insert_default().insert("clé".into(), value);
                }
                _ => {}
            }
            proptest::prop_assert_eq!(
                e.to_canonical_bytes(),
                serde_json_canonicalizer::to_vec(&e).unwrap()
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20_000))]
        /// A value `is_plain` lets through (a changed value, a snapshot's) is written by
        /// serde_json exactly as the RFC 8785 canonicaliser writes it.
        #[test]
        fn plain_values_are_rfc8785(v in json_value()) {
            if is_plain(&v) {
                proptest::prop_assert_eq!(
                    serde_json::to_vec(&v).unwrap(),
                    serde_json_canonicalizer::to_vec(&v).unwrap()
                );
            }
        }
    }
}
