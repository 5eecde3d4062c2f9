//! One command inside the writer's transaction: load, check, write, read back, diff, log.

use std::{collections::BTreeMap, sync::Arc};

use jiff::{Timestamp, tz::TimeZone};
use serde_json::Value;

use super::{ActorRef, Archived, Command, Context, Error, MAX_ARCHIVE, NewSession, Outcome};
use crate::audit::{
    archive,
    checkpoint::{Checkpoint, Signer},
};
use crate::domain::{
    audit::{
        Action, Actor, ActorKind, Authoriser, Category, CommunicationRef, Entry, NoteRef,
        RecordRef, SCHEMA_VERSION, SecurityRef, leaf_hash, text_sha256,
    },
    diff::{self, Change, HIDDEN},
    field::{FieldError, FieldType},
    invoice::DISCOUNT_FIELDS,
    list::{ListKind, due_date},
    merkle::Frontier,
    note,
    permission::{DEFAULT_GROUPS, Feature, Grants, Level, Permission, default_grants},
    preference::Preference,
    reason::{self, MAX_REASON_CHARS, ReasonRule},
    record::{Fields, RecordKind, check_input},
    session,
    stamp::{self, StampFormat},
    status_note::{self, Names},
    user::SYSTEM_INITIALS,
};
use crate::store::{
    WriteTx, audit_log, auth, lists, notes, preferences,
    records::{self, StoredRecord},
};

pub(super) const ORIGIN_KEY: &str = "log.origin";

/// What the writer carries from one command to the next within a batch. Marked before
/// each command so that a failed one can be undone with its writes.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub next_idx: i64,
    /// Shared with the marks commands are undone to: copied only when one changes.
    pub prefs: Arc<BTreeMap<String, String>>,
    /// The right edge of the Merkle tree, read at the start of a batch when another
    /// process appended since, or before signing.
    pub frontier: Frontier,
    /// The tree was just built for entries that predate it: the head needs its root.
    pub rebuilt: bool,
    /// Set when the writer found the log changed behind its back: no more signing.
    pub alarm: Option<String>,
    /// The time of the log's last entry (the epoch for an empty log).
    pub last_ts: Timestamp,
    /// Appends add tree nodes; only the benchmark of what the tree costs turns this off.
    pub tree: bool,
    /// Entries appended in this batch, stored together before it commits (or before
    /// anything reads the log back): on PostgreSQL that saves a round trip per entry.
    pub pending: Vec<audit_log::NewEntry>,
    /// Tree nodes appended in this batch, stored likewise.
    pub unsaved: Vec<audit_log::Node>,
    /// How many of `pending` and of `unsaved` a command that reads the log or the tree
    /// back has stored already.
    pub saved: (usize, usize),
}

/// What undoing one command of a batch restores. A command only appends entries and
/// tree nodes, so the batch's are cut back to their counts rather than copied for every
/// command.
pub(super) struct Mark {
    state: State,
    pending: usize,
    unsaved: usize,
}

impl State {
    /// The state a batch starts from. `kept` is the one the writer's last batch left; it
    /// still holds while the head has not moved, since every change to what it caches
    /// (the tree, the preferences, the last time) appends an entry: the tree's and the
    /// preferences' reads are then skipped.
    pub async fn load(tx: &mut WriteTx, tree: bool, kept: Option<Self>) -> Result<Self, Error> {
        let next_idx = match tx.head_at_lock() {
            Some(size) => size,
            None => audit_log::head_size(tx).await?,
        };
        let known = kept.as_ref().map_or(0, |k| k.next_idx);
        if let Some(kept) = kept.filter(|k| k.next_idx == next_idx) {
            return Ok(Self {
                rebuilt: false,
                ..kept
            });
        }
        let size = u64::try_from(next_idx).unwrap_or(0);
        let ids = if tree {
            Frontier::node_ids(size)
        } else {
            Vec::new()
        };
        let stored = audit_log::nodes_for_write(tx, &ids).await?;
        let rebuilt = stored.len() != ids.len();
        if rebuilt && audit_log::head_has_root(tx).await? {
            // Entries the tree does not cover were not appended by a ledger: fail closed
            // rather than sign them into the tree.
            return Err(Error::Tampered(format!(
                "the head counts {next_idx} entries but the tree does not cover them all"
            )));
        }
        if tree && !rebuilt {
            appended_by_a_ledger(tx, known, next_idx).await?;
        }
        let frontier = if !tree {
            Frontier::new()
        } else if rebuilt {
            build_tree(tx, next_idx).await?
        } else {
            let map: BTreeMap<(u8, u64), [u8; 32]> =
                stored.into_iter().map(|(l, i, h)| ((l, i), h)).collect();
            Frontier::from_nodes(size, |l, i| map[&(l, i)])
        };
        let last_ts = audit_log::ts_for_write(tx, next_idx - 1)
            .await?
            .and_then(|ts| Timestamp::from_microsecond(ts).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(Self {
            next_idx,
            prefs: Arc::new(preferences::all_for_write(tx).await?),
            frontier,
            rebuilt,
            alarm: None,
            last_ts,
            tree,
            pending: Vec::new(),
            unsaved: Vec::new(),
            saved: (0, 0),
        })
    }

    /// Stores the entries and tree nodes appended since the last call.
    pub async fn save(&mut self, tx: &mut WriteTx) -> Result<(), Error> {
        let (entries, nodes) = self.saved;
        if entries < self.pending.len() {
            audit_log::append(tx, &self.pending[entries..]).await?;
        }
        if nodes < self.unsaved.len() {
            audit_log::insert_nodes(tx, &self.unsaved[nodes..]).await?;
        }
        self.saved = (self.pending.len(), self.unsaved.len());
        Ok(())
    }

    /// Stores what the batch has not stored yet and, when the head `moved`, the head:
    /// on PostgreSQL in one statement (see [`audit_log::store_batch`]).
    pub async fn finish(&mut self, tx: &mut WriteTx, moved: bool) -> Result<(), Error> {
        if !moved {
            return self.save(tx).await;
        }
        let (entries, nodes) = self.saved;
        audit_log::store_batch(
            tx,
            &self.pending[entries..],
            &self.unsaved[nodes..],
            self.next_idx,
            &self.frontier.root(),
        )
        .await?;
        self.saved = (self.pending.len(), self.unsaved.len());
        Ok(())
    }

    /// The batch committed: its entries and nodes are stored for good.
    pub fn committed(&mut self) {
        self.pending.clear();
        self.unsaved.clear();
        self.saved = (0, 0);
    }

    /// The state to undo the next command to.
    pub fn mark(&mut self) -> Mark {
        let pending = std::mem::take(&mut self.pending);
        let unsaved = std::mem::take(&mut self.unsaved);
        let state = self.clone();
        (self.pending, self.unsaved) = (pending, unsaved);
        Mark {
            state,
            pending: self.pending.len(),
            unsaved: self.unsaved.len(),
        }
    }

    /// Undoes a command whose writes were taken back: entries and nodes it stored are
    /// gone with them.
    pub fn undo(&mut self, mark: Mark) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut unsaved = std::mem::take(&mut self.unsaved);
        pending.truncate(mark.pending);
        unsaved.truncate(mark.unsaved);
        *self = mark.state;
        (self.pending, self.unsaved) = (pending, unsaved);
    }

    fn logging(&self, category: Category) -> bool {
        !category.switchable()
            || self
                .prefs
                .get(&category.preference_key())
                .map(String::as_str)
                != Some("off")
    }

    fn time_zone(&self) -> TimeZone {
        self.prefs
            .get(Preference::TimeZone.key())
            .and_then(|name| TimeZone::get(name).ok())
            .unwrap_or_else(TimeZone::system)
    }
}

/// Logs that the writer found the tree it left changed: a System alarm entry.
pub(super) async fn alarm(
    tx: &mut WriteTx,
    state: &mut State,
    detail: &str,
    now: Timestamp,
) -> Result<Option<i64>, Error> {
    let ctx = Context::system();
    let (actor, grants) = resolve_actor(tx, &ctx.actor).await?;
    let mut run = Run {
        tx,
        state,
        ctx: &ctx,
        now,
        actor,
        grants,
        authoriser: None,
        overridden: Vec::new(),
        last_event: None,
    };
    let change = Change {
        field: "detail".into(),
        old: Value::Null,
        new: Value::from(detail),
    };
    run.log(Category::System, Action::Alarm, None, vec![change], None)
        .await
}

/// Logs that the wall clock reads `wall`, behind the log's time `log_time` (the time this
/// entry and the next ones carry until the clock catches up).
pub(super) async fn clock_backwards(
    tx: &mut WriteTx,
    state: &mut State,
    wall: Timestamp,
    log_time: Timestamp,
) -> Result<Option<i64>, Error> {
    let ctx = Context::system();
    let (actor, grants) = resolve_actor(tx, &ctx.actor).await?;
    let mut run = Run {
        tx,
        state,
        ctx: &ctx,
        now: log_time,
        actor,
        grants,
        authoriser: None,
        overridden: Vec::new(),
        last_event: None,
    };
    // Entries keep microseconds; so does what this one says.
    let shown = |t: Timestamp| {
        Timestamp::from_microsecond(t.as_microsecond())
            .map_or_else(|_| t.to_string(), |t| t.to_string())
    };
    let change = Change {
        field: "clock".into(),
        old: Value::from(shown(log_time)),
        new: Value::from(shown(wall)),
    };
    run.log(
        Category::System,
        Action::ClockBackwards,
        None,
        vec![change],
        None,
    )
    .await
}

/// Fails closed on entries in the tree's last block that no ledger wrote: those appended
/// since this writer last looked (`known`), or the last one when it has not looked yet
/// (`known` 0). A ledger stores a tree node at the end of every block, so an entry that
/// ends one without it is found by the node's absence; in the last block, whose nodes
/// are computed from the leaves, each entry must be what its row says: its own index,
/// under its stored leaf hash. (Entries changed in place are verify's to find, and the
/// signer's when they change the root it left.)
async fn appended_by_a_ledger(tx: &mut WriteTx, known: i64, size: i64) -> Result<(), Error> {
    let block = 1i64 << audit_log::LOWEST_STORED;
    let since = if known > 0 { known } else { size - 1 };
    let from = since.max(size - size.rem_euclid(block));
    for (idx, bytes, leaf) in audit_log::bodies_for_write(tx, from, size).await? {
        // An archived entry keeps only its leaf hash; the tail is never archived.
        let own = bytes.is_empty()
            || (leaf_hash(&bytes)[..] == leaf[..]
                && Entry::from_bytes(&bytes).is_ok_and(|e| e.i == idx));
        if !own {
            return Err(Error::Tampered(format!(
                "entry {idx} is not the entry a ledger appended at that index"
            )));
        }
    }
    Ok(())
}

/// Builds the tree of a log whose entries predate it, from their stored leaf hashes.
async fn build_tree(tx: &mut WriteTx, size: i64) -> Result<Frontier, Error> {
    let leaves = audit_log::leaf_hashes_for_write(tx).await?;
    if leaves.len() as i64 != size {
        return Err(Error::Store(crate::store::Error::Corrupt(format!(
            "the log head says {size} entries but {} are stored",
            leaves.len()
        ))));
    }
    tracing::warn!(size, "building the audit log's Merkle tree from its leaves");
    let mut frontier = Frontier::new();
    let mut nodes = Vec::new();
    for leaf in leaves {
        nodes.extend(frontier.push(leaf));
    }
    audit_log::insert_nodes(tx, &nodes).await?;
    Ok(frontier)
}

/// One command's run: the transaction, who acts, and on whose authority.
pub(super) struct Run<'a> {
    tx: &'a mut WriteTx,
    state: &'a mut State,
    ctx: &'a Context,
    now: Timestamp,
    actor: Actor,
    /// What the actor may do; `None` for the system, which may do anything.
    grants: Option<Grants>,
    authoriser: Option<Authoriser>,
    /// The permissions the authoriser's credentials supplied.
    overridden: Vec<Permission>,
    /// The action and record of the last entry this command made (or would have made,
    /// had its category been logged), which an override entry names.
    last_event: Option<(Action, Option<RecordRef>)>,
}

/// The users who acted earlier in a batch, as read then (actor, permissions). They hold
/// until a command that may change a user or a group ([`Command::keeps_actors`]); a new
/// batch starts with none, since another process may have changed them in between.
pub(super) type Actors = std::collections::HashMap<i64, (Actor, Grants)>;

pub(super) async fn apply(
    tx: &mut WriteTx,
    state: &mut State,
    actors: &mut Actors,
    ctx: &Context,
    command: Command,
    now: Timestamp,
    signer: Option<&Signer>,
) -> Result<Outcome, Error> {
    if let Some(reason) = &ctx.reason {
        if reason.trim().is_empty() {
            return Err(Error::invalid("reason", "must not be blank"));
        }
        if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
            return Err(Error::invalid(
                "reason",
                format!("must be one line of at most {MAX_REASON_CHARS} characters"),
            ));
        }
    }
    let (actor, grants) = match &ctx.actor {
        ActorRef::User(id) => match actors.get(id) {
            Some((actor, grants)) => (actor.clone(), Some(grants.clone())),
            None => {
                let (actor, grants) = resolve_actor(tx, &ctx.actor).await?;
                if let Some(g) = &grants {
                    actors.insert(*id, (actor.clone(), g.clone()));
                }
                (actor, grants)
            }
        },
        other => resolve_actor(tx, other).await?,
    };
    let mut run = Run {
        tx,
        state,
        ctx,
        now,
        actor,
        grants,
        authoriser: None,
        overridden: Vec::new(),
        last_event: None,
    };
    let outcome = dispatch(&mut run, command, signer).await?;
    if let Some(authoriser) = run.authoriser.clone() {
        run.log_override(authoriser).await?;
    }
    Ok(outcome)
}

async fn dispatch(
    run: &mut Run<'_>,
    command: Command,
    signer: Option<&Signer>,
) -> Result<Outcome, Error> {
    match command {
        Command::Create { kind, fields } => {
            if kind == RecordKind::User {
                return Err(Error::invalid(
                    "kind",
                    "users are added with their password (create_user)",
                ));
            }
            run.create(kind, fields, Fields::new()).await
        }
        Command::CreateUser {
            fields,
            password_hash,
        } => {
            let mut system = Fields::new();
            system.insert("password_hash".into(), password_hash.into());
            run.create(RecordKind::User, fields, system).await
        }
        Command::Update {
            kind,
            id,
            fields,
            expected_version,
        } => run.update(kind, id, fields, expected_version).await,
        Command::Delete {
            kind,
            id,
            expected_version,
        } => run.delete(kind, id, expected_version).await,
        Command::Restore { kind, id } => run.restore(kind, id).await,
        Command::Post { kind, id } => run.set_flag(kind, id, "posted", true, Action::Post).await,
        Command::Unlock { kind, id } => {
            run.set_flag(kind, id, "posted", false, Action::Unlock)
                .await
        }
        Command::VoidPayment { id } => {
            run.set_flag(RecordKind::Payment, id, "voided", true, Action::Void)
                .await
        }
        Command::SetPassword {
            user_id,
            password_hash,
        } => run.set_password(user_id, password_hash).await,
        Command::SetAuditLogging { category, enabled } => {
            run.set_audit_logging(category, enabled).await
        }
        Command::SetPreference { key, value } => run.set_studio_preference(&key, &value).await,
        Command::SaveNotes {
            kind,
            id,
            text,
            base_revision,
        } => run.save_notes(kind, id, &text, base_revision).await,
        Command::AppendNotes {
            kind,
            id,
            text,
            stamp,
        } => run.append_notes(kind, id, &text, stamp).await,
        Command::RecordCommunication {
            kind,
            id,
            channel,
            subject,
            via,
        } => {
            let comm = CommunicationRef {
                channel,
                subject,
                via,
            };
            run.record_communication(kind, id, comm).await
        }
        Command::Install => run.install().await,
        Command::Lifecycle { starting } => run.lifecycle(starting).await,
        Command::SignIn { session } => run.sign_in(session).await,
        Command::SignInFailed {
            username,
            user_id,
            ip,
            outcome,
        } => {
            run.sign_in_failed(Action::SignInFailed, &username, user_id, &ip, outcome)
                .await
        }
        Command::OverrideFailed {
            username,
            ip,
            outcome,
        } => {
            run.sign_in_failed(Action::OverrideFailed, &username, None, &ip, outcome)
                .await
        }
        Command::SignOut { id_hash } => run.sign_out(&id_hash).await,
        Command::TouchSession { id_hash } => {
            auth::touch_session(run.tx, &id_hash, run.micros()).await?;
            Ok(Outcome::default())
        }
        Command::CreateToken { name, hash } => run.create_token(&name, &hash).await,
        Command::RevokeToken { id } => run.revoke_token(id).await,
        Command::TouchToken { id } => {
            auth::touch_token(run.tx, id, run.micros()).await?;
            Ok(Outcome::default())
        }
        Command::Denied {
            permission,
            action,
            record,
        } => run.denied(permission, action, record).await,
        Command::Checkpoint => {
            let signer = signer.ok_or_else(|| {
                Error::NotPermitted("this ledger was started without a signing key".into())
            })?;
            if let Some(alarm) = &run.state.alarm {
                return Err(Error::Tampered(format!("refusing to sign: {alarm}")));
            }
            run.checkpoint(signer).await
        }
        Command::Archive { before, out } => {
            let signer = signer.ok_or_else(|| {
                Error::NotPermitted("this ledger was started without a signing key".into())
            })?;
            if let Some(alarm) = &run.state.alarm {
                return Err(Error::Tampered(format!("refusing to sign: {alarm}")));
            }
            run.archive(signer, before, &out).await
        }
    }
}

async fn resolve_actor(
    tx: &mut WriteTx,
    actor: &ActorRef,
) -> Result<(Actor, Option<Grants>), Error> {
    Ok(match actor {
        ActorRef::User(id) => {
            let member = active_member(tx, *id).await?;
            let text = |f: &str| {
                member.user.fields[f]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let actor = Actor {
                kind: ActorKind::User,
                id: Some(*id),
                initials: text("initials"),
                name: text("display_name"),
            };
            (actor, Some(member.grants()))
        }
        ActorRef::Anonymous => (
            Actor {
                kind: ActorKind::Anonymous,
                id: None,
                initials: String::new(),
                name: "Anonymous".into(),
            },
            Some(Grants::default()),
        ),
        ActorRef::System => (
            Actor {
                kind: ActorKind::System,
                id: None,
                initials: SYSTEM_INITIALS.into(),
                name: "System".into(),
            },
            None,
        ),
        ActorRef::Automation(name) => (
            Actor {
                kind: ActorKind::Automation,
                id: None,
                initials: SYSTEM_INITIALS.into(),
                name: name.clone(),
            },
            None,
        ),
    })
}

/// A user able to act, with their group: read in the command's transaction, so a
/// permission taken away holds from the next command.
async fn active_member(tx: &mut WriteTx, id: i64) -> Result<records::Member, Error> {
    match records::member_for_write(tx, id).await? {
        Some(m) if m.active() => Ok(m),
        _ => Err(Error::NotPermitted(format!(
            "user {id} is not an active user"
        ))),
    }
}

fn unchanged(record: StoredRecord) -> Outcome {
    Outcome {
        record: Some(record),
        ..Default::default()
    }
}

impl Run<'_> {
    fn micros(&self) -> i64 {
        self.now.as_microsecond()
    }

    fn today(&self) -> jiff::civil::Date {
        self.now.to_zoned_datetime(self.state.time_zone()).date()
    }

    /// Passes if the actor may do this, or if a manager's credentials allow it (both are
    /// then on record); system actors may do anything.
    async fn permit(&mut self, permission: Permission) -> Result<(), Error> {
        let Some(grants) = &self.grants else {
            return Ok(());
        };
        if grants.allows(permission) || self.overridden.contains(&permission) {
            return Ok(());
        }
        let Some(by) = self.ctx.authorized_by else {
            return Err(Error::Forbidden(permission));
        };
        let authoriser = active_member(self.tx, by).await?;
        if !authoriser.grants().allows(permission) {
            return Err(Error::Forbidden(permission));
        }
        self.overridden.push(permission);
        let text = |f: &str| {
            authoriser.user.fields[f]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        self.authoriser = Some(Authoriser {
            id: by,
            initials: text("initials"),
            name: text("display_name"),
            permission: self
                .overridden
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
        Ok(())
    }

    /// The record kind's own level, e.g. Add to create a client.
    async fn permit_kind(&mut self, kind: RecordKind, level: Level) -> Result<(), Error> {
        self.permit(Permission::new(Feature::of_kind(kind), level))
            .await
    }

    /// Deleting and restoring need the kind's Delete level and the Delete Records
    /// capability.
    async fn permit_delete(&mut self, kind: RecordKind) -> Result<(), Error> {
        self.permit_kind(kind, Level::Delete).await?;
        self.permit(Permission::capability(Feature::DeleteRecords))
            .await
    }

    /// The invoice overrides (discount, price, date) a change makes need their capability.
    async fn permit_overrides(&mut self, rules: &[ReasonRule]) -> Result<(), Error> {
        for feature in rules.iter().filter_map(|r| Feature::for_override(*r)) {
            self.permit(Permission::capability(feature)).await?;
        }
        Ok(())
    }

    /// The User Authentication entry of an override: both people, the permission, the
    /// record, the action and the reason.
    async fn log_override(&mut self, authoriser: Authoriser) -> Result<(), Error> {
        let (action, rec) = self.last_event.clone().unwrap_or((Action::Update, None));
        let sec = SecurityRef {
            permission: Some(authoriser.permission.clone()),
            action: Some(action.as_str().into()),
            ..Default::default()
        };
        let extras = Extras {
            sec: Some(sec),
            ..Default::default()
        };
        self.log_with(
            Category::UserAuthentication,
            Action::Override,
            rec,
            vec![],
            None,
            extras,
        )
        .await?;
        Ok(())
    }

    /// Appends the entry if its category is logged; returns its index.
    async fn log(
        &mut self,
        category: Category,
        action: Action,
        rec: Option<RecordRef>,
        diff: Vec<Change>,
        snap: Option<Fields>,
    ) -> Result<Option<i64>, Error> {
        self.log_with(category, action, rec, diff, snap, Extras::default())
            .await
    }

    /// Appends the entry if its category is logged; returns its index.
    async fn log_with(
        &mut self,
        category: Category,
        action: Action,
        rec: Option<RecordRef>,
        diff: Vec<Change>,
        snap: Option<Fields>,
        extras: Extras,
    ) -> Result<Option<i64>, Error> {
        if action != Action::Override {
            self.last_event = Some((action, rec.clone()));
        }
        if !self.state.logging(category) {
            return Ok(None);
        }
        let idx = self.state.next_idx;
        let entry = Entry {
            v: SCHEMA_VERSION,
            log: self
                .state
                .prefs
                .get(ORIGIN_KEY)
                .cloned()
                .unwrap_or_default(),
            i: idx,
            ts: self.micros(),
            cat: category,
            act: action,
            actor: self.actor.clone(),
            auth: self.authoriser.clone(),
            rec: rec.clone(),
            diff,
            snap,
            note: extras.note,
            comm: extras.comm,
            sec: extras.sec,
            reason: self.ctx.reason.clone(),
            req: self.ctx.request.clone(),
        };
        let bytes = entry.to_canonical_bytes();
        let hash = leaf_hash(&bytes);
        self.state.pending.push(audit_log::NewEntry {
            idx,
            ts: entry.ts,
            category: category.as_str(),
            action: action.as_str(),
            actor_kind: self.actor.kind.as_str(),
            actor_id: self.actor.id,
            record_type: rec.as_ref().map(|r| r.kind.clone()),
            record_id: rec.as_ref().map(|r| r.id),
            bytes,
            leaf_hash: hash,
        });
        if self.state.tree {
            let nodes = self.state.frontier.push(hash);
            self.state.unsaved.extend(nodes);
        }
        self.state.next_idx += 1;
        Ok(Some(idx))
    }

    /// Logs a record change under its kind's category; invoice changes that touch the
    /// discount go under Invoice Discounts Applied when that is on.
    async fn log_record(
        &mut self,
        record: &StoredRecord,
        kind: RecordKind,
        action: Action,
        diff: Vec<Change>,
        snap: Option<Fields>,
    ) -> Result<Option<i64>, Error> {
        let mut category = kind.category();
        let discount = kind == RecordKind::Invoice
            && diff
                .iter()
                .any(|c| DISCOUNT_FIELDS.contains(&c.field.as_str()) && !c.new.is_null());
        if discount && self.state.logging(Category::InvoiceDiscounts) {
            category = Category::InvoiceDiscounts;
        }
        let rec = RecordRef {
            kind: kind.as_str().to_owned(),
            id: record.id,
            label: kind.label(record.id, &record.fields),
        };
        self.log(category, action, Some(rec), diff, snap).await
    }

    async fn load(&mut self, kind: RecordKind, id: i64) -> Result<StoredRecord, Error> {
        records::get_for_write(self.tx, kind, id)
            .await?
            .ok_or(Error::NotFound { kind, id })
    }

    async fn load_live(&mut self, kind: RecordKind, id: i64) -> Result<StoredRecord, Error> {
        let record = self.load(kind, id).await?;
        if record.is_deleted() {
            return Err(Error::Deleted {
                label: kind.label(id, &record.fields),
            });
        }
        Ok(record)
    }

    fn check_version(
        kind: RecordKind,
        record: &StoredRecord,
        expected: Option<i64>,
    ) -> Result<(), Error> {
        match expected {
            Some(v) if v != record.version => Err(Error::Conflict {
                label: kind.label(record.id, &record.fields),
                current_version: record.version,
            }),
            _ => Ok(()),
        }
    }

    /// Posted money is corrected by new documents; voided payments are final.
    fn check_unlocked(kind: RecordKind, record: &StoredRecord) -> Result<(), Error> {
        let label = || kind.label(record.id, &record.fields);
        if kind.postable() && record.fields["posted"] == Value::Bool(true) {
            return Err(Error::Locked {
                label: label(),
                state: "posted",
                hint: "unlock it first, or correct it with a refund or credit",
            });
        }
        if record.fields.get("voided") == Some(&Value::Bool(true)) {
            return Err(Error::Locked {
                label: label(),
                state: "voided",
                hint: "record a new payment instead",
            });
        }
        Ok(())
    }

    async fn create(
        &mut self,
        kind: RecordKind,
        input: Fields,
        system: Fields,
    ) -> Result<Outcome, Error> {
        self.permit_kind(kind, Level::Add).await?;
        if let Some(outcome) = self.replay(kind).await? {
            return Ok(outcome);
        }
        let mut fields = check_input(kind, &input, true).map_err(Error::Invalid)?;
        fields.extend(system);
        self.fill_defaults(kind, &mut fields).await?;
        // Report bad references together with every other problem, in one answer.
        let mut errors = self.reference_errors(kind, &fields, None).await?;
        let fields = match kind.normalize(&fields) {
            Ok(f) if errors.is_empty() => f,
            Ok(_) => return Err(Error::Invalid(errors)),
            Err(e) => {
                errors.extend(e);
                return Err(Error::Invalid(errors));
            }
        };
        self.check_unique(kind, &fields, None, None).await?;
        let mut fields = fields;
        if let Some((name, first)) = kind.numbering() {
            let number = records::next_number(self.tx, kind, first).await?;
            fields.insert(name.to_owned(), number.into());
        }
        self.permit_overrides(&created_overrides(kind, &fields, self.today()))
            .await?;
        let id = records::insert(self.tx, kind, &fields, self.micros()).await?;
        self.remember_idempotency(kind, id, None).await?;
        let record = self.load(kind, id).await?;
        let diff = diff::created(kind, &record.fields);
        let audit_index = self
            .log_record(&record, kind, Action::Create, diff, None)
            .await?;
        self.after_change(kind, Action::Create, None, &record, &[], &[], audit_index)
            .await?;
        Ok(Outcome {
            record: Some(record),
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn fill_defaults(&mut self, kind: RecordKind, fields: &mut Fields) -> Result<(), Error> {
        let absent = |f: &Fields, name: &str| f.get(name).is_none_or(Value::is_null);
        let today = Value::from(self.today().to_string());
        if let Some((name, _)) = kind.numbering() {
            // Validation sees a placeholder; the real number is taken once all checks pass,
            // so refused commands use up no numbers.
            fields.insert(name.to_owned(), 0.into());
        }
        match kind {
            RecordKind::Session => {
                if absent(fields, "session_status_id")
                    && let Some(first) =
                        lists::first_active(self.tx, ListKind::SessionStatus).await?
                {
                    fields.insert("session_status_id".into(), first.id.into());
                }
                self.default_end(fields, "session_type_id").await?;
                self.set_status_due(fields).await?;
            }
            RecordKind::Appointment => self.default_end(fields, "appointment_type_id").await?,
            RecordKind::Invoice => {
                if absent(fields, "invoice_date") {
                    fields.insert("invoice_date".into(), today);
                }
                if absent(fields, "lines") {
                    fields.insert("lines".into(), Value::Array(vec![]));
                }
            }
            RecordKind::Payment => {
                if absent(fields, "paid_on") {
                    fields.insert("paid_on".into(), today);
                }
            }
            RecordKind::User => {
                if !fields.contains_key("active") {
                    fields.insert("active".into(), true.into());
                }
            }
            RecordKind::Client | RecordKind::SecurityGroup => {}
        }
        Ok(())
    }

    /// An end time left out is the start plus the type's default length.
    async fn default_end(&mut self, fields: &mut Fields, type_field: &str) -> Result<(), Error> {
        if fields.get("ends_at").is_some_and(|v| !v.is_null()) {
            return Ok(());
        }
        let start = fields
            .get("starts_at")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok());
        let type_id = fields.get(type_field).and_then(Value::as_i64);
        if let (Some(start), Some(type_id)) = (start, type_id)
            && let Some(minutes) = lists::get_for_write(self.tx, type_id)
                .await?
                .and_then(|i| i.minutes)
        {
            let end = start + jiff::SignedDuration::from_mins(minutes);
            fields.insert("ends_at".into(), end.to_string().into());
        }
        Ok(())
    }

    /// A session's status falls due the status's duration in business days from today.
    async fn set_status_due(&mut self, fields: &mut Fields) -> Result<(), Error> {
        let status = fields.get("session_status_id").and_then(Value::as_i64);
        let days = match status {
            Some(id) => lists::get_for_write(self.tx, id)
                .await?
                .and_then(|i| i.days),
            None => None,
        };
        let due = days
            .filter(|d| *d > 0)
            .map(|d| Value::from(due_date(self.today(), d).to_string()));
        fields.insert("status_due".into(), due.unwrap_or(Value::Null));
        Ok(())
    }

    /// Every reference must point at a live record or an active list entry. On update,
    /// only the references that change are checked: a list entry retired later does not
    /// lock the records that use it.
    async fn reference_errors(
        &mut self,
        kind: RecordKind,
        fields: &Fields,
        before: Option<&Fields>,
    ) -> Result<Vec<FieldError>, Error> {
        let mut errors = Vec::new();
        for field in kind.fields() {
            let Some(id) = fields.get(field.name).and_then(Value::as_i64) else {
                continue;
            };
            if before.is_some_and(|b| b.get(field.name) == fields.get(field.name)) {
                continue;
            }
            let problem = match field.ty {
                FieldType::Ref(target) if !records::is_live(self.tx, target, id).await? => {
                    format!("must refer to an existing {target} (not {id})")
                }
                FieldType::Choice(list) if !records::choice_is_valid(self.tx, list, id).await? => {
                    let list = list.as_str().replace('_', " ");
                    format!("must be an active {list} entry (not {id})")
                }
                _ => continue,
            };
            errors.push(FieldError::new(field.name, problem));
        }
        if kind == RecordKind::User
            && let Some(group) = fields.get("security_group").and_then(Value::as_str)
            && before.is_none_or(|b| b.get("security_group") != fields.get("security_group"))
        {
            let found =
                records::find_for_write(self.tx, RecordKind::SecurityGroup, "name", group).await?;
            if found.is_none_or(|g| g.is_deleted()) {
                errors.push(FieldError::new(
                    "security_group",
                    format!("must name an existing security group (not {group})"),
                ));
            }
        }
        Ok(errors)
    }

    async fn check_references(
        &mut self,
        kind: RecordKind,
        fields: &Fields,
        before: Option<&Fields>,
    ) -> Result<(), Error> {
        let errors = self.reference_errors(kind, fields, before).await?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }

    async fn check_unique(
        &mut self,
        kind: RecordKind,
        fields: &Fields,
        before: Option<&Fields>,
        id: Option<i64>,
    ) -> Result<(), Error> {
        let mut errors = Vec::new();
        for field in kind
            .fields()
            .iter()
            .filter(|f| f.unique && f.access != crate::domain::field::Access::System)
        {
            let value = fields.get(field.name).unwrap_or(&Value::Null);
            if value.is_null() || before.is_some_and(|b| b.get(field.name) == Some(value)) {
                continue;
            }
            if records::is_taken(self.tx, kind, field, value, id).await? {
                errors.push(FieldError::new(
                    field.name,
                    format!("{value} is already taken"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }

    async fn update(
        &mut self,
        kind: RecordKind,
        id: i64,
        input: Fields,
        expected_version: Option<i64>,
    ) -> Result<Outcome, Error> {
        self.permit_kind(kind, Level::Modify).await?;
        let before = self.load_live(kind, id).await?;
        Self::check_version(kind, &before, expected_version)?;
        Self::check_unlocked(kind, &before)?;
        let input = check_input(kind, &input, false).map_err(Error::Invalid)?;
        let mut merged = before.fields.clone();
        merged.extend(input);
        if kind == RecordKind::Session {
            session::on_update(&before.fields, &mut merged);
            if merged.get("session_status_id") != before.fields.get("session_status_id") {
                self.set_status_due(&mut merged).await?;
            }
        }
        let after = kind.normalize(&merged).map_err(Error::Invalid)?;
        let changes = diff::diff(kind, &before.fields, &after);
        if changes.is_empty() {
            return Ok(unchanged(before));
        }
        self.check_references(kind, &after, Some(&before.fields))
            .await?;
        self.check_unique(kind, &after, Some(&before.fields), Some(id))
            .await?;
        self.write_changes(kind, before, &after, changes, Action::Update)
            .await
    }

    /// Writes the changed fields of `after`, reads the record back and logs the change.
    async fn write_changes(
        &mut self,
        kind: RecordKind,
        before: StoredRecord,
        after: &Fields,
        changes: Vec<Change>,
        action: Action,
    ) -> Result<Outcome, Error> {
        let rules = self.reasons_needed(kind, action, &changes)?;
        self.permit_overrides(&reason::triggered(kind, action, &changes))
            .await?;
        if kind == RecordKind::User
            && (action == Action::Password
                || changes
                    .iter()
                    .any(|c| c.field == "active" && c.new == Value::Bool(false)))
        {
            // A new password or a deactivation ends every session the user had open.
            auth::end_sessions_of(self.tx, before.id, self.micros()).await?;
        }
        let values: Fields = changes
            .iter()
            .map(|c| (c.field.clone(), after[&c.field].clone()))
            .collect();
        let record = records::update(self.tx, kind, &before, &values, self.micros()).await?;
        let audit_index = self
            .log_record(&record, kind, action, changes.clone(), None)
            .await?;
        self.after_change(
            kind,
            action,
            Some(&before.fields),
            &record,
            &changes,
            &rules,
            audit_index,
        )
        .await?;
        Ok(Outcome {
            record: Some(record),
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn delete(
        &mut self,
        kind: RecordKind,
        id: i64,
        expected_version: Option<i64>,
    ) -> Result<Outcome, Error> {
        self.permit_delete(kind).await?;
        let before = self.load_live(kind, id).await?;
        Self::check_version(kind, &before, expected_version)?;
        Self::check_unlocked(kind, &before)?;
        self.check_unused(kind, &before).await?;
        let rules = self.reasons_needed(kind, Action::Delete, &[])?;
        self.write_tombstone(kind, before, true, &rules).await
    }

    /// A client with sessions, invoices or payments cannot go (as in Spectra), nor an
    /// invoice with payments, nor a session with invoices or appointments.
    async fn check_unused(&mut self, kind: RecordKind, record: &StoredRecord) -> Result<(), Error> {
        let id = record.id;
        let uses: Vec<(&str, i64)> = match kind {
            RecordKind::Client => vec![
                (
                    "session",
                    records::referrers(self.tx, RecordKind::Session, "client_id", id).await?,
                ),
                (
                    "invoice",
                    records::referrers(self.tx, RecordKind::Invoice, "client_id", id).await?
                        + records::referrers(self.tx, RecordKind::Invoice, "bill_to_client_id", id)
                            .await?,
                ),
                ("payment", records::client_payments(self.tx, id).await?),
            ],
            RecordKind::Invoice => vec![(
                "payment",
                records::referrers(self.tx, RecordKind::Payment, "invoice_id", id).await?,
            )],
            RecordKind::Session => vec![
                (
                    "invoice",
                    records::referrers(self.tx, RecordKind::Invoice, "session_id", id).await?,
                ),
                (
                    "appointment",
                    records::referrers(self.tx, RecordKind::Appointment, "session_id", id).await?,
                ),
            ],
            RecordKind::SecurityGroup => {
                let name = record.fields["name"].as_str().unwrap_or_default();
                vec![("user", records::group_members(self.tx, name).await?)]
            }
            _ => vec![],
        };
        let named: Vec<String> = uses
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
            .collect();
        if named.is_empty() {
            return Ok(());
        }
        Err(Error::InUse(format!(
            "{} still has {}; delete or move them first",
            kind.label(id, &record.fields),
            join_and(&named)
        )))
    }

    async fn restore(&mut self, kind: RecordKind, id: i64) -> Result<Outcome, Error> {
        self.permit_delete(kind).await?;
        let before = self.load(kind, id).await?;
        if !before.is_deleted() {
            return Ok(unchanged(before));
        }
        // What it points at must be live again first (restore the client, then its session).
        self.check_references(kind, &before.fields, None)
            .await
            .map_err(|e| match e {
                Error::Invalid(errors) => Error::InUse(format!(
                    "{} cannot be restored: {}",
                    kind.label(id, &before.fields),
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                e => e,
            })?;
        let rules = self.reasons_needed(kind, Action::Restore, &[])?;
        self.write_tombstone(kind, before, false, &rules).await
    }

    /// Deletes (a tombstone, with the whole record in the entry) or restores a record.
    async fn write_tombstone(
        &mut self,
        kind: RecordKind,
        before: StoredRecord,
        delete: bool,
        rules: &[ReasonRule],
    ) -> Result<Outcome, Error> {
        let (action, deleted_at, snap) = if delete {
            let snap = snapshot(kind, &before.fields);
            (Action::Delete, Some(self.micros()), Some(snap))
        } else {
            (Action::Restore, None, None)
        };
        let now = self.micros();
        let record = records::set_deleted(self.tx, kind, &before, deleted_at, now).await?;
        let audit_index = self.log_record(&record, kind, action, vec![], snap).await?;
        self.after_change(
            kind,
            action,
            Some(&before.fields),
            &record,
            &[],
            rules,
            audit_index,
        )
        .await?;
        Ok(Outcome {
            record: Some(record),
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    /// Post, unlock and void: one system-owned flag, each with its own permission.
    async fn set_flag(
        &mut self,
        kind: RecordKind,
        id: i64,
        flag: &str,
        value: bool,
        action: Action,
    ) -> Result<Outcome, Error> {
        if !kind.postable() {
            return Err(Error::invalid(
                "kind",
                format!("{kind} records are not posted"),
            ));
        }
        let permission = match action {
            Action::Unlock => Permission::capability(Feature::UnlockPosted),
            Action::Void => Permission::new(Feature::Payments, Level::Delete),
            _ => Permission::capability(Feature::EndOfDay),
        };
        self.permit(permission).await?;
        let before = self.load_live(kind, id).await?;
        if before.fields[flag] == Value::Bool(value) {
            return Ok(unchanged(before));
        }
        if action == Action::Void {
            Self::check_unlocked(kind, &before)?;
        }
        let mut after = before.fields.clone();
        after.insert(flag.to_owned(), value.into());
        let changes = diff::diff(kind, &before.fields, &after);
        self.write_changes(kind, before, &after, changes, action)
            .await
    }

    async fn set_password(
        &mut self,
        user_id: i64,
        password_hash: String,
    ) -> Result<Outcome, Error> {
        if self.actor.id != Some(user_id) {
            self.permit(Permission::new(Feature::UsersAndSecurity, Level::Modify))
                .await?;
        }
        let before = self.load_live(RecordKind::User, user_id).await?;
        let mut after = before.fields.clone();
        after.insert("password_hash".into(), password_hash.into());
        let changes = diff::diff(RecordKind::User, &before.fields, &after);
        self.write_changes(RecordKind::User, before, &after, changes, Action::Password)
            .await
    }

    async fn set_preference(
        &mut self,
        key: String,
        old: Option<String>,
        new: String,
    ) -> Result<Outcome, Error> {
        preferences::set(self.tx, &key, &new).await?;
        Arc::make_mut(&mut self.state.prefs).insert(key.clone(), new.clone());
        let change = Change {
            field: key,
            old: old.map_or(Value::Null, Value::from),
            new: Value::from(new),
        };
        let audit_index = self
            .log(
                Category::System,
                Action::Preference,
                None,
                vec![change],
                None,
            )
            .await?;
        Ok(Outcome {
            record: None,
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn set_audit_logging(
        &mut self,
        category: Category,
        enabled: bool,
    ) -> Result<Outcome, Error> {
        self.permit(Permission::new(Feature::Preferences, Level::Modify))
            .await?;
        if !category.switchable() {
            return Err(Error::invalid(
                "category",
                "System entries are always logged",
            ));
        }
        if self.state.logging(category) == enabled {
            return Ok(Outcome::default());
        }
        let key = category.preference_key();
        let old = Some(if enabled { "off" } else { "on" }.to_owned());
        let new = if enabled { "on" } else { "off" }.to_owned();
        self.set_preference(key, old, new).await
    }

    async fn set_studio_preference(&mut self, key: &str, value: &str) -> Result<Outcome, Error> {
        self.permit(Permission::new(Feature::Preferences, Level::Modify))
            .await?;
        let preference = Preference::parse(key)
            .ok_or_else(|| Error::invalid("key", format!("{key:?} is not a preference")))?;
        let value = preference
            .check(value)
            .map_err(|e| Error::Invalid(vec![e]))?;
        let old = self.state.prefs.get(key).cloned();
        if old.as_deref() == Some(value.as_str()) {
            return Ok(Outcome::default());
        }
        self.set_preference(key.to_owned(), old, value).await
    }

    /// Start and stop marks. A start finding the last run still marked running means that
    /// run ended without a clean stop (a crash, a kill, a power cut) — or, on a shared
    /// PostgreSQL database, that another server is running.
    async fn lifecycle(&mut self, starting: bool) -> Result<Outcome, Error> {
        const KEY: &str = "server.state";
        let (action, state, diff) = if starting {
            let previous = match self.state.prefs.get(KEY).map(String::as_str) {
                Some("running") => "unclean",
                Some(_) => "clean",
                None => "none",
            };
            let change = Change {
                field: "previous_shutdown".into(),
                old: Value::Null,
                new: Value::from(previous),
            };
            (Action::Start, "running", vec![change])
        } else {
            (Action::Stop, "stopped", vec![])
        };
        preferences::set(self.tx, KEY, state).await?;
        Arc::make_mut(&mut self.state.prefs).insert(KEY.into(), state.into());
        let audit_index = self.log(Category::System, action, None, diff, None).await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    /// Appends the checkpoint's System entry, then signs the tree that includes it.
    async fn checkpoint(&mut self, signer: &Signer) -> Result<Outcome, Error> {
        let origin = self
            .state
            .prefs
            .get(ORIGIN_KEY)
            .cloned()
            .unwrap_or_default();
        if signer.name() != origin {
            return Err(Error::NotPermitted(format!(
                "the signing key is for {:?}, not this log ({origin:?})",
                signer.name()
            )));
        }
        let change = Change {
            field: "size".into(),
            old: Value::Null,
            new: Value::from(self.state.next_idx + 1),
        };
        let audit_index = self
            .log(
                Category::System,
                Action::Checkpoint,
                None,
                vec![change],
                None,
            )
            .await?;
        let checkpoint = Checkpoint {
            origin,
            size: u64::try_from(self.state.next_idx).unwrap_or(0),
            root: self.state.frontier.root(),
        };
        let note = signer.sign(&checkpoint);
        audit_log::insert_checkpoint(
            self.tx,
            self.state.next_idx,
            &checkpoint.root,
            self.micros(),
            &note,
        )
        .await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            checkpoint: Some(note),
            ..Default::default()
        })
    }

    /// A new database: default lists, a fresh origin for its log, and entry 0.
    async fn install(&mut self) -> Result<Outcome, Error> {
        if self.state.prefs.contains_key(ORIGIN_KEY) {
            self.seed_groups().await?;
            return Ok(Outcome::default());
        }
        lists::seed_defaults(self.tx).await?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| Error::NotPermitted(format!("no randomness: {e}")))?;
        let install_id = crate::domain::digest::hex(&id);
        let origin = format!("keeptrack.{install_id}/audit");
        preferences::set(self.tx, ORIGIN_KEY, &origin).await?;
        Arc::make_mut(&mut self.state.prefs).insert(ORIGIN_KEY.into(), origin.clone());
        let change = Change {
            field: ORIGIN_KEY.into(),
            old: Value::Null,
            new: origin.into(),
        };
        let audit_index = self
            .log(Category::System, Action::Install, None, vec![change], None)
            .await?;
        self.seed_groups().await?;
        Ok(Outcome {
            record: None,
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    fn stamp(&self) -> String {
        let format = self
            .state
            .prefs
            .get(Preference::StampFormat.key())
            .and_then(|f| StampFormat::parse(f))
            .unwrap_or_default();
        stamp::stamp(
            self.now,
            &self.state.time_zone(),
            &self.actor.initials,
            format,
        )
    }

    /// The policy's rules this change triggers; refused when they need a reason and
    /// none was given.
    fn reasons_needed(
        &self,
        kind: RecordKind,
        action: Action,
        changes: &[Change],
    ) -> Result<Vec<ReasonRule>, Error> {
        let policy = match self.state.prefs.get(Preference::ReasonsRequired.key()) {
            Some(list) => ReasonRule::parse_list(list).unwrap_or_default(),
            None => ReasonRule::ALL.to_vec(),
        };
        let rules: Vec<ReasonRule> = reason::triggered(kind, action, changes)
            .into_iter()
            .filter(|r| policy.contains(r))
            .collect();
        if !rules.is_empty() && self.ctx.reason.is_none() {
            return Err(Error::ReasonRequired { rules });
        }
        Ok(rules)
    }

    /// The names of the list entries a change touches (all of them on create), for the
    /// wording of status notes and reason lines.
    async fn list_names(
        &mut self,
        kind: RecordKind,
        before: Option<&Fields>,
        after: &Fields,
    ) -> Result<Names, Error> {
        let mut names = Names::new();
        for field in kind.fields() {
            if !matches!(field.ty, FieldType::Choice(_))
                || before.is_some_and(|b| b.get(field.name) == after.get(field.name))
            {
                continue;
            }
            let ids = [
                before.and_then(|b| b.get(field.name)),
                after.get(field.name),
            ];
            for id in ids.into_iter().flatten().filter_map(Value::as_i64) {
                if !names.contains_key(&id)
                    && let Some(item) = lists::get_for_write(self.tx, id).await?
                {
                    names.insert(id, item.name);
                }
            }
        }
        Ok(names)
    }

    /// What a change writes besides the record and its entry, in the same transaction:
    /// its status notes, and the stamped reason line in the record's notes.
    #[expect(clippy::too_many_arguments, reason = "one change, described whole")]
    async fn after_change(
        &mut self,
        kind: RecordKind,
        action: Action,
        before: Option<&Fields>,
        record: &StoredRecord,
        changes: &[Change],
        rules: &[ReasonRule],
        audit_index: Option<i64>,
    ) -> Result<(), Error> {
        let names = self.list_names(kind, before, &record.fields).await?;
        let reason = self.ctx.reason.clone();
        let lines = status_note::derive(
            kind,
            action,
            before,
            &record.fields,
            &names,
            &self.state.time_zone(),
            reason.as_deref(),
        );
        for text in lines {
            self.add_status_note(kind, record.id, &text, audit_index)
                .await?;
        }
        if let (Some(reason), false) = (reason, rules.is_empty()) {
            let what = match action {
                Action::Delete => "Deleted".to_owned(),
                Action::Restore => "Restored".to_owned(),
                Action::Void => "Payment voided".to_owned(),
                _ => changes
                    .iter()
                    .filter(|c| rules.iter().any(|r| r.fields().contains(&c.field.as_str())))
                    .map(|c| status_note::describe(kind, c, &names))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let line = format!("{}{what}. Reason: {reason}", self.stamp());
            let author = self.author();
            notes::stamp_line(self.tx, kind, record.id, self.micros(), &author, &line).await?;
        }
        Ok(())
    }

    async fn add_status_note(
        &mut self,
        kind: RecordKind,
        id: i64,
        text: &str,
        audit_idx: Option<i64>,
    ) -> Result<(), Error> {
        let note = notes::StatusNote {
            id: 0,
            ts: self.micros(),
            actor_kind: self.actor.kind.as_str().to_owned(),
            actor_id: self.actor.id,
            initials: self.actor.initials.clone(),
            text: format!("{}{text}", self.stamp()),
            audit_idx,
        };
        notes::insert_status_note(self.tx, kind, id, &note).await?;
        Ok(())
    }

    fn author(&self) -> notes::Author {
        notes::Author {
            kind: self.actor.kind.as_str().to_owned(),
            id: self.actor.id,
            initials: self.actor.initials.clone(),
            name: self.actor.name.clone(),
        }
    }

    /// Appends a line to a record's notes as a new revision by the actor.
    async fn append_note_line(
        &mut self,
        kind: RecordKind,
        id: i64,
        line: &str,
    ) -> Result<(i64, String), Error> {
        let author = self.author();
        Ok(notes::append_line(self.tx, kind, id, self.micros(), &author, line).await?)
    }

    /// Adds `text` below whatever the notes hold now, stamped when `stamp`: nothing
    /// that was saved changes, so it needs no base revision and never conflicts.
    async fn append_notes(
        &mut self,
        kind: RecordKind,
        id: i64,
        text: &str,
        stamp: bool,
    ) -> Result<Outcome, Error> {
        self.permit_kind(kind, Level::Modify).await?;
        let record = self.load_live(kind, id).await?;
        if let Some(outcome) = self.replay_notes(kind, id).await? {
            return Ok(outcome);
        }
        let line = note::line(text).map_err(|e| Error::Invalid(vec![e]))?;
        let line = match stamp {
            true => format!("{}{line}", self.stamp()),
            false => line,
        };
        let (revision, text) = self.append_note_line(kind, id, &line).await?;
        self.remember_idempotency(kind, id, Some(revision)).await?;
        // Known only once the line is in: the command's savepoint takes it out again.
        if text.chars().count() > note::MAX_CHARS {
            return Err(Error::Invalid(vec![FieldError::new(
                "text",
                format!(
                    "would make the notes longer than {} characters",
                    note::MAX_CHARS
                ),
            )]));
        }
        self.notes_saved(kind, record, revision, text).await
    }

    async fn save_notes(
        &mut self,
        kind: RecordKind,
        id: i64,
        text: &str,
        base_revision: i64,
    ) -> Result<Outcome, Error> {
        self.permit_kind(kind, Level::Modify).await?;
        let record = self.load_live(kind, id).await?;
        let text = note::check(text).map_err(|e| Error::Invalid(vec![e]))?;
        let latest = notes::latest_for_write(self.tx, kind, id).await?;
        let (current, old, author) = latest.map_or((0, String::new(), String::new()), |r| {
            (r.revision, r.text, r.author.initials)
        });
        if base_revision != current {
            return Err(Error::NotesConflict {
                revision: current,
                author,
                text: old,
            });
        }
        if text == old {
            return Ok(Outcome {
                notes_revision: Some(current),
                notes_text: Some(text),
                ..unchanged(record)
            });
        }
        if !note::only_appends(&old, &text) {
            self.permit(Permission::capability(Feature::ClientNotes))
                .await?;
        }
        let change = note::change(&old, &text);
        let revision = notes::Revision {
            revision: current + 1,
            ts: self.micros(),
            author: self.author(),
            text,
        };
        notes::insert_revision(self.tx, kind, id, &revision, &change).await?;
        self.notes_saved(kind, record, revision.revision, revision.text)
            .await
    }

    /// Logs a new notes revision: the entry names the revision and its text's hash, not
    /// the text, which the revision keeps.
    async fn notes_saved(
        &mut self,
        kind: RecordKind,
        record: StoredRecord,
        revision: i64,
        text: String,
    ) -> Result<Outcome, Error> {
        let rec = RecordRef {
            kind: kind.as_str().to_owned(),
            id: record.id,
            label: kind.label(record.id, &record.fields),
        };
        let extras = Extras {
            note: Some(NoteRef {
                rev: revision,
                sha256: text_sha256(&text),
            }),
            ..Default::default()
        };
        let audit_index = self
            .log_with(
                kind.category(),
                Action::Notes,
                Some(rec),
                vec![],
                None,
                extras,
            )
            .await?;
        Ok(Outcome {
            record: Some(record),
            changed: true,
            audit_index,
            notes_revision: Some(revision),
            notes_text: Some(text),
            ..Default::default()
        })
    }

    async fn record_communication(
        &mut self,
        kind: RecordKind,
        id: i64,
        comm: CommunicationRef,
    ) -> Result<Outcome, Error> {
        self.permit_kind(kind, Level::Modify).await?;
        let record = self.load(kind, id).await?;
        let rec = RecordRef {
            kind: kind.as_str().to_owned(),
            id,
            label: kind.label(id, &record.fields),
        };
        let text =
            status_note::communication_sent(&comm.channel, &comm.subject, comm.via.as_deref());
        let extras = Extras {
            comm: Some(comm),
            ..Default::default()
        };
        let audit_index = self
            .log_with(
                kind.category(),
                Action::Communication,
                Some(rec),
                vec![],
                None,
                extras,
            )
            .await?;
        self.add_status_note(kind, id, &text, audit_index).await?;
        Ok(Outcome {
            record: Some(record),
            changed: true,
            audit_index,
            ..Default::default()
        })
    }
}

impl Run<'_> {
    /// Moves the oldest entries timed before `before` into a signed archive file: their
    /// System entry and a checkpoint covering it first; then the file, checked as an
    /// auditor would and durable before the commit; then the run's record and the
    /// bodies' removal (which the guard trigger allows only now). If the commit fails
    /// after all, a file that verifies on its own is left and nothing left the database.
    async fn archive(
        &mut self,
        signer: &Signer,
        before: Timestamp,
        out: &std::path::Path,
    ) -> Result<Outcome, Error> {
        self.permit(Permission::new(Feature::AuditLogs, Level::Full))
            .await?;
        let refuse = |why: String| Error::Tampered(format!("refusing to archive: {why}"));
        // What it cuts and copies is read back from the log.
        self.state.save(self.tx).await?;
        let previous = audit_log::last_archive_run_for_write(self.tx).await?;
        let first = previous.as_ref().map_or(0, |r| r.to_idx);
        let cut = audit_log::first_at_or_after_for_write(self.tx, before.as_microsecond())
            .await?
            .unwrap_or(self.state.next_idx);
        let end = cut.min(first + MAX_ARCHIVE);
        if end <= first {
            return Ok(Outcome::default());
        }
        let mut entries = Vec::new();
        for (idx, bytes, leaf) in audit_log::bodies_for_write(self.tx, first, end).await? {
            // Nothing leaves the database that is not what was appended.
            if idx != first + entries.len() as i64 || leaf_hash(&bytes).as_slice() != leaf {
                return Err(refuse(format!("entry {idx} is not as it was appended")));
            }
            entries.push(String::from_utf8(bytes).map_err(|_| refuse(format!("entry {idx}")))?);
        }
        if entries.len() as i64 != end - first {
            return Err(refuse(format!(
                "entries {first} to {end} are not all there"
            )));
        }
        let file = if out.is_dir() {
            out.join(format!("archive-{first:012}-{end:012}.json"))
        } else {
            out.to_owned()
        };
        let said = |field: &str, new: Value| Change {
            field: field.into(),
            old: Value::Null,
            new,
        };
        let changes = vec![
            said("from", first.into()),
            said("to", end.into()),
            said("before", before.to_string().into()),
            said("file", file.display().to_string().into()),
        ];
        let audit_index = self
            .log(Category::System, Action::Archive, None, changes, None)
            .await?;
        let note = self
            .checkpoint(signer)
            .await?
            .checkpoint
            .unwrap_or_default();
        let tree_size = u64::try_from(self.state.next_idx).unwrap_or(0);
        let (first_u, end_u) = (first as u64, end as u64);
        let previous_size = previous.map(|r| r.tree_size as u64);
        let ids = archive::node_ids(first_u, end_u, tree_size, previous_size)
            .map_err(|e| refuse(e.to_string()))?;
        self.state.save(self.tx).await?;
        let nodes: BTreeMap<(u8, u64), [u8; 32]> = audit_log::nodes_for_write(self.tx, &ids)
            .await?
            .into_iter()
            .map(|(l, i, h)| ((l, i), h))
            .collect();
        if let Some((l, i)) = ids.iter().find(|id| !nodes.contains_key(id)) {
            return Err(refuse(format!("tree node {l}/{i} is missing")));
        }
        let verifier = signer.verifier();
        let built = archive::build(
            first_u,
            entries,
            tree_size,
            previous_size,
            note.clone(),
            &verifier,
            |l, i| nodes[&(l, i)],
        )
        .map_err(|e| refuse(e.to_string()))?;
        let bytes = serde_json::to_vec_pretty(&built).map_err(|e| refuse(e.to_string()))?;
        archive::check(&bytes, Some(&verifier)).map_err(|e| refuse(e.to_string()))?;
        let run = audit_log::ArchiveRun {
            from_idx: first,
            to_idx: end,
            entry_idx: audit_index.unwrap_or(-1),
            tree_size: self.state.next_idx,
            ts: self.micros(),
            file: file.display().to_string(),
        };
        audit_log::insert_archive_run(self.tx, &run).await?;
        audit_log::clear_bodies(self.tx, first, end).await?;
        let target = file.clone();
        tokio::task::spawn_blocking(move || archive::write_new(&target, &bytes))
            .await
            .map_err(std::io::Error::other)
            .flatten()
            .map_err(|e| Error::NotSaved(format!("cannot write {}: {e}", file.display())))?;
        Ok(Outcome {
            changed: true,
            audit_index,
            checkpoint: Some(note),
            archived: Some(Archived {
                first,
                end,
                file,
                more: cut > end,
            }),
            ..Default::default()
        })
    }
}

/// What an entry carries besides the change itself.
#[derive(Default)]
struct Extras {
    note: Option<NoteRef>,
    comm: Option<CommunicationRef>,
    sec: Option<SecurityRef>,
}

/// A deleted record's full fields for the log, secrets hidden.
fn snapshot(kind: RecordKind, fields: &Fields) -> Fields {
    let mut snap = fields.clone();
    for field in kind.fields().iter().filter(|f| f.secret) {
        snap.insert(field.name.to_owned(), HIDDEN.into());
    }
    snap
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Sign-in, sessions, tokens and the other User Authentication events.
impl Run<'_> {
    /// Adds the default groups (owner, manager, staff) that do not exist yet, deleted
    /// ones included: a group someone deleted stays deleted.
    async fn seed_groups(&mut self) -> Result<(), Error> {
        for name in DEFAULT_GROUPS {
            if records::find_for_write(self.tx, RecordKind::SecurityGroup, "name", name)
                .await?
                .is_some()
            {
                continue;
            }
            let mut fields = Fields::new();
            fields.insert("name".into(), name.into());
            fields.insert("permissions".into(), default_grants(name).to_sparse_value());
            self.create(RecordKind::SecurityGroup, fields, Fields::new())
                .await?;
        }
        Ok(())
    }

    /// A create under an Idempotency-Key that was already used: the first result, or a
    /// refusal if the key came with another request.
    async fn replay(&mut self, kind: RecordKind) -> Result<Option<Outcome>, Error> {
        let (Some(idem), Some(user)) = (&self.ctx.idempotency, self.actor.id) else {
            return Ok(None);
        };
        let Some(first) = auth::idempotency_for_write(self.tx, user, &idem.key).await? else {
            return Ok(None);
        };
        if first.request_hash != idem.request_hash
            || first.record_type != kind.as_str()
            || first.revision.is_some()
        {
            return Err(Error::IdempotencyMismatch);
        }
        let record = self.load(kind, first.record_id).await?;
        Ok(Some(Outcome {
            record: Some(record),
            replayed: true,
            ..Default::default()
        }))
    }

    /// A line added under an Idempotency-Key that was already used: the revision the
    /// first request made, or a refusal if the key came with another request.
    async fn replay_notes(&mut self, kind: RecordKind, id: i64) -> Result<Option<Outcome>, Error> {
        let (Some(idem), Some(user)) = (&self.ctx.idempotency, self.actor.id) else {
            return Ok(None);
        };
        let Some(first) = auth::idempotency_for_write(self.tx, user, &idem.key).await? else {
            return Ok(None);
        };
        let (true, Some(number)) = (
            first.request_hash == idem.request_hash
                && first.record_type == kind.as_str()
                && first.record_id == id,
            first.revision,
        ) else {
            return Err(Error::IdempotencyMismatch);
        };
        let revision = notes::revision_for_write(self.tx, kind, id, number)
            .await?
            .ok_or_else(|| Error::Tampered(format!("notes revision {number} is missing")))?;
        Ok(Some(Outcome {
            replayed: true,
            changed: true,
            notes_revision: Some(revision.revision),
            notes_text: Some(revision.text),
            ..Default::default()
        }))
    }

    async fn remember_idempotency(
        &mut self,
        kind: RecordKind,
        id: i64,
        revision: Option<i64>,
    ) -> Result<(), Error> {
        let (Some(idem), Some(user)) = (&self.ctx.idempotency, self.actor.id) else {
            return Ok(());
        };
        let row = auth::IdempotencyRow {
            request_hash: idem.request_hash.clone(),
            record_type: kind.as_str().into(),
            record_id: id,
            revision,
        };
        auth::insert_idempotency(self.tx, user, &idem.key, &row, self.micros()).await?;
        Ok(())
    }

    /// The acting user's own record, as a reference for the log.
    async fn actor_ref(&mut self) -> Result<Option<RecordRef>, Error> {
        let Some(id) = self.actor.id else {
            return Ok(None);
        };
        let user = self.load(RecordKind::User, id).await?;
        Ok(Some(RecordRef {
            kind: RecordKind::User.as_str().into(),
            id,
            label: RecordKind::User.label(id, &user.fields),
        }))
    }

    async fn log_security(
        &mut self,
        action: Action,
        rec: Option<RecordRef>,
        sec: SecurityRef,
    ) -> Result<Option<i64>, Error> {
        let extras = Extras {
            sec: Some(sec),
            ..Default::default()
        };
        self.log_with(
            Category::UserAuthentication,
            action,
            rec,
            vec![],
            None,
            extras,
        )
        .await
    }

    async fn sign_in(&mut self, session: NewSession) -> Result<Outcome, Error> {
        let Some(user_id) = self.actor.id else {
            return Err(Error::NotPermitted("only users sign in".into()));
        };
        let request = self.ctx.request.clone().unwrap_or_default();
        auth::insert_session(
            self.tx,
            &auth::NewSession {
                id_hash: &session.id_hash,
                user_id,
                csrf_token: &session.csrf_token,
                now: self.micros(),
                expires_at: session.expires_at,
                ip: request.ip.as_deref(),
                user_agent: request.ua.as_deref(),
            },
        )
        .await?;
        let user = self.load(RecordKind::User, user_id).await?;
        let username = user.fields["username"].as_str().unwrap_or_default();
        auth::clear_failures(self.tx, username).await?;
        let rec = self.actor_ref().await?;
        let audit_index = self
            .log_security(Action::SignIn, rec, SecurityRef::default())
            .await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    /// Records a failed sign-in or override attempt and, when it is the one that reaches
    /// the limit, the lockout.
    async fn sign_in_failed(
        &mut self,
        action: Action,
        username: &str,
        user_id: Option<i64>,
        ip: &str,
        outcome: String,
    ) -> Result<Outcome, Error> {
        let username = username.trim().to_lowercase();
        let now = self.micros();
        auth::insert_failure(self.tx, &username, ip, now).await?;
        let rec = match user_id {
            Some(id) => {
                let user = self.load(RecordKind::User, id).await?;
                Some(RecordRef {
                    kind: RecordKind::User.as_str().into(),
                    id,
                    label: RecordKind::User.label(id, &user.fields),
                })
            }
            None => None,
        };
        let sec = SecurityRef {
            username: Some(username.clone()),
            outcome: Some(outcome),
            ..Default::default()
        };
        let audit_index = self.log_security(action, rec.clone(), sec).await?;
        let since = now - crate::domain::lockout::WINDOW_MICROS;
        let limit = crate::domain::lockout::MAX_FAILURES;
        let (by_name, by_ip) =
            auth::recent_failures_for_write(self.tx, &username, ip, since, limit + 1).await?;
        if by_name.len() as i64 == limit || by_ip.len() as i64 == limit {
            let sec = SecurityRef {
                username: Some(username),
                outcome: Some(if by_name.len() as i64 == limit {
                    "account locked for 15 minutes".into()
                } else {
                    "address locked for 15 minutes".into()
                }),
                ..Default::default()
            };
            self.log_security(Action::Lockout, rec, sec).await?;
        }
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn sign_out(&mut self, id_hash: &str) -> Result<Outcome, Error> {
        let Some(session) = auth::session_for_write(self.tx, id_hash).await? else {
            return Ok(Outcome::default());
        };
        if !auth::end_session(self.tx, id_hash, self.micros()).await? {
            return Ok(Outcome::default());
        }
        let user = self.load(RecordKind::User, session.user_id).await?;
        let rec = RecordRef {
            kind: RecordKind::User.as_str().into(),
            id: session.user_id,
            label: RecordKind::User.label(session.user_id, &user.fields),
        };
        let outcome = match self.actor.kind {
            ActorKind::User => None,
            _ => Some("session timed out".to_owned()),
        };
        let sec = SecurityRef {
            outcome,
            ..Default::default()
        };
        let audit_index = self.log_security(Action::SignOut, Some(rec), sec).await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn create_token(&mut self, name: &str, hash: &str) -> Result<Outcome, Error> {
        let Some(user_id) = self.actor.id else {
            return Err(Error::NotPermitted("tokens belong to users".into()));
        };
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must be one line of 1 to 100 characters",
            ));
        }
        let id = auth::insert_token(self.tx, user_id, name, hash, self.micros()).await?;
        let rec = self.actor_ref().await?;
        let sec = SecurityRef {
            token: Some(id),
            outcome: Some(name.to_owned()),
            ..Default::default()
        };
        let audit_index = self.log_security(Action::TokenCreate, rec, sec).await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            token_id: Some(id),
            ..Default::default()
        })
    }

    async fn revoke_token(&mut self, id: i64) -> Result<Outcome, Error> {
        let Some(token) = auth::token_by_id_for_write(self.tx, id).await? else {
            return Err(Error::NotFound {
                kind: RecordKind::User,
                id,
            });
        };
        if self.actor.id != Some(token.user_id) {
            self.permit(Permission::new(Feature::UsersAndSecurity, Level::Modify))
                .await?;
        }
        if token.revoked_at.is_some() {
            return Ok(Outcome::default());
        }
        auth::revoke_token(self.tx, id, self.micros()).await?;
        let owner = self.load(RecordKind::User, token.user_id).await?;
        let rec = RecordRef {
            kind: RecordKind::User.as_str().into(),
            id: token.user_id,
            label: RecordKind::User.label(token.user_id, &owner.fields),
        };
        let sec = SecurityRef {
            token: Some(id),
            outcome: Some(token.name),
            ..Default::default()
        };
        let audit_index = self
            .log_security(Action::TokenRevoke, Some(rec), sec)
            .await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }

    async fn denied(
        &mut self,
        permission: String,
        action: String,
        record: Option<(RecordKind, i64)>,
    ) -> Result<Outcome, Error> {
        let rec = match record {
            Some((kind, id)) => {
                records::get_for_write(self.tx, kind, id)
                    .await?
                    .map(|r| RecordRef {
                        kind: kind.as_str().into(),
                        id,
                        label: kind.label(id, &r.fields),
                    })
            }
            None => None,
        };
        let sec = SecurityRef {
            permission: Some(permission),
            action: Some(action),
            ..Default::default()
        };
        let audit_index = self.log_security(Action::Denied, rec, sec).await?;
        Ok(Outcome {
            changed: true,
            audit_index,
            ..Default::default()
        })
    }
}

/// The overrides a new invoice makes: a discount, or a date other than today.
fn created_overrides(
    kind: RecordKind,
    fields: &Fields,
    today: jiff::civil::Date,
) -> Vec<ReasonRule> {
    let mut rules = Vec::new();
    if kind != RecordKind::Invoice {
        return rules;
    }
    if ["discount_percent", "discount_cents"]
        .iter()
        .any(|f| fields.get(*f).is_some_and(|v| !v.is_null()))
    {
        rules.push(ReasonRule::InvoiceDiscount);
    }
    if fields.get("invoice_date").and_then(Value::as_str) != Some(today.to_string().as_str()) {
        rules.push(ReasonRule::InvoiceDate);
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            next_idx: 0,
            prefs: Arc::default(),
            frontier: Frontier::new(),
            rebuilt: false,
            alarm: None,
            last_ts: Timestamp::UNIX_EPOCH,
            tree: true,
            pending: Vec::new(),
            unsaved: Vec::new(),
            saved: (0, 0),
        }
    }

    fn append(s: &mut State, byte: u8) {
        s.pending.push(audit_log::NewEntry {
            idx: s.next_idx,
            ts: 0,
            category: "system",
            action: "test",
            actor_kind: "system",
            actor_id: None,
            record_type: None,
            record_id: None,
            bytes: vec![byte],
            leaf_hash: [byte; 32],
        });
        let nodes = s.frontier.push([byte; 32]);
        s.unsaved.extend(nodes);
        s.next_idx += 1;
    }

    #[test]
    fn undoing_a_command_restores_the_tree_and_the_entries_and_nodes_it_stored() {
        let mut s = state();
        append(&mut s, 1);
        append(&mut s, 2);
        let (root, nodes) = (s.frontier.root(), s.unsaved.clone());
        let mark = s.mark();
        append(&mut s, 3);
        // The command stored the batch's entries and nodes (as archiving does) and then
        // failed: its writes were taken back out of the database with them.
        s.saved = (s.pending.len(), s.unsaved.len());
        Arc::make_mut(&mut s.prefs).insert("k".into(), "v".into());
        s.undo(mark);
        assert_eq!(s.next_idx, 2);
        assert_eq!(s.frontier.root(), root);
        assert_eq!(s.unsaved, nodes);
        let kept: Vec<i64> = s.pending.iter().map(|e| e.idx).collect();
        assert_eq!(kept, [0, 1]);
        assert_eq!(s.saved, (0, 0), "what it stored is to be stored again");
        assert!(s.prefs.is_empty());
        append(&mut s, 3);
        s.committed();
        assert!(s.pending.is_empty() && s.unsaved.is_empty() && s.saved == (0, 0));
    }
}
