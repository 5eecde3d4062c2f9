//! The single writer: drains the queue in batches, runs each command so that it can fail
//! alone, commits once, then answers every caller (group commit).

use jiff::Timestamp;
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use super::{Error, Job, Outcome, Seal, apply};
use crate::audit::checkpoint::Signer;
use crate::domain::merkle::{Frontier, Hash};
use crate::domain::record::RecordKind;
use crate::store::{audit_log, records};
use crate::{
    clock::Clock,
    store::{Backend, Db, WriteConn, WriteTx},
};

/// The most commands one transaction takes: enough to amortise the fsync, few enough
/// that one batch's latency stays small.
const MAX_BATCH: usize = 256;

/// How long the writer waits, at most, for the callers it has just answered to come back
/// before it starts a smaller batch: a fraction of one durable commit. Without it the
/// first caller back gets a transaction (and an fsync) of its own while the rest queue
/// behind it, and batches alternate between one command and all the others.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// How long the queue may stay quiet before the writer stops waiting: callers in the
/// same process come back within microseconds of each other, while callers over HTTP
/// take longer than `GATHER` to send their next request, and waiting for them only
/// delayed the commands already in hand.
const QUIET: std::time::Duration = std::time::Duration::from_micros(50);

/// How many entries may wait for their keys to reach `audit_keys` before a batch copies
/// them in its own transaction (PostgreSQL) or has them copied once it commits (an SQLite
/// file's key copier, `store::key_file`). Each copy puts the keys of all of them on a few index
/// pages (one per actor, category or action, and one per record), where writing them
/// entry by entry put five pages in every commit; queries scan the ones still waiting,
/// so this also bounds what that costs a query.
const INDEX_EVERY: i64 = 256;

/// How long the writer must have been idle before it copies the keys still waiting,
/// so that a quiet log is soon fully indexed.
const INDEX_IDLE: std::time::Duration = std::time::Duration::from_millis(250);

/// What the writer remembers of the tree between batches: the size and root it left
/// (appends by other processes extend that tree; anything else is tampering), and the
/// alarm once raised, which stops all signing until a restart after `audit verify`.
struct Watch {
    /// Appends keep the tree (always, but in the benchmark of what the tree costs).
    tree: bool,
    /// The state the last committed batch left: the tree it left is its frontier. Reused
    /// while nobody appends after it; a failed batch leaves it as it was, like the database.
    kept: Option<apply::State>,
    alarm: Option<String>,
    /// The clock was behind the log at the last batch (so that was already recorded).
    clock_behind: bool,
    /// The actors the last committed batch resolved, while nobody else writes.
    actors: apply::Actors,
    /// The log's size after the last commit, and how many of its entries have their
    /// keys in `audit_keys` (as far as this writer knows: 0 until it has copied them).
    logged: i64,
    keyed: i64,
}

/// What `/metrics` shows of the writer: committed batches, the commands in them, and the
/// batches that ran again with a savepoint per command.
#[derive(Default)]
pub(super) struct Stats {
    pub batches: std::sync::atomic::AtomicU64,
    pub commands: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
}

/// How far the clock may lag the log's last entry before that is recorded: servers
/// sharing a PostgreSQL database have clocks a few milliseconds apart, and every entry
/// one writes just after the other's would otherwise be an occurrence.
const CLOCK_SLACK_MICROS: i64 = 1_000_000;

pub(super) async fn run(
    db: Db,
    conn: WriteConn,
    mut jobs: mpsc::Receiver<Job>,
    signer: Option<Signer>,
    clock: Clock,
    stats: std::sync::Arc<Stats>,
    tree: bool,
) {
    let seal = Seal(());
    let mut last = Timestamp::UNIX_EPOCH;
    let mut watch = Watch {
        tree,
        kept: None,
        alarm: None,
        clock_behind: false,
        actors: apply::Actors::new(),
        logged: 0,
        keyed: 0,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut expected = 0;
    loop {
        let received = if watch.keyed < watch.logged {
            let next = tokio::time::timeout(INDEX_IDLE, jobs.recv_many(&mut batch, MAX_BATCH));
            match next.await {
                Ok(n) => n,
                Err(_) => {
                    index_keys(&db, &conn, &seal, &mut watch).await;
                    continue;
                }
            }
        } else {
            jobs.recv_many(&mut batch, MAX_BATCH).await
        };
        if received == 0 {
            break;
        }
        gather(&mut jobs, &mut batch, expected);
        let size = batch.len() as u64;
        let parts = Parts {
            db: &db,
            conn: &conn,
            seal: &seal,
            signer: signer.as_ref(),
            clock: &clock,
        };
        let replies = run_batch(
            &parts,
            &mut last,
            &mut watch,
            &stats,
            std::mem::take(&mut batch),
        )
        .await;
        stats
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats
            .commands
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        // The next batch can hold everyone answered now and everyone already waiting.
        expected = replies.len() + jobs.len();
        for (reply, result) in replies {
            // A caller that stopped waiting still had its change committed; nothing to do.
            let _ = reply.send(result);
        }
    }
}

/// Copies the keys still waiting into `audit_keys`, in a transaction of their own, or
/// has an SQLite file's key copier do it (no transaction needed). A failure is logged
/// and left to the next batch that copies keys.
async fn index_keys(db: &Db, conn: &WriteConn, seal: &Seal, watch: &mut Watch) {
    watch.keyed = watch.logged;
    if conn.wake_key_copier() {
        return;
    }
    let copied = async {
        let mut tx = WriteTx::begin(db, conn, seal).await?;
        if !tx.undisturbed() {
            // Its commit tells the next batch that nobody wrote since: forget now what
            // another writer may have changed meanwhile.
            watch.kept = None;
            watch.actors.clear();
        }
        audit_log::index_tail(&mut tx).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = copied {
        tracing::warn!(error = %e, "the audit log's keys were not copied; the next batch will");
    }
}

/// Waits up to `GATHER` for the batch to hold `expected` commands: those the last batch
/// answered and those that waited while it ran (PostgreSQL's `commit_delay` with
/// `commit_siblings`, keyed to who is likely to come back), and only while they keep
/// coming (`QUIET`). A lone caller never waits. Between polls the writer gives up the
/// processor to the callers' threads.
fn gather(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, expected: usize) {
    let want = expected.min(MAX_BATCH);
    if batch.len() >= want {
        return;
    }
    // Tokio's timers tick in milliseconds, far too coarse here: poll the queue and let
    // the callers run in between.
    let start = std::time::Instant::now();
    let deadline = start + GATHER;
    let mut quiet_until = start + QUIET;
    while batch.len() < want {
        match jobs.try_recv() {
            Ok(job) => {
                batch.push(job);
                quiet_until = std::time::Instant::now() + QUIET;
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                let now = std::time::Instant::now();
                if now >= deadline.min(quiet_until) {
                    break;
                }
                std::thread::yield_now();
            }
            Err(_) => break,
        }
    }
}

type Reply = (
    tokio::sync::oneshot::Sender<Result<Outcome, Error>>,
    Result<Outcome, Error>,
);

/// What every batch runs with.
struct Parts<'a> {
    db: &'a Db,
    conn: &'a WriteConn,
    seal: &'a Seal,
    signer: Option<&'a Signer>,
    clock: &'a Clock,
}

/// Why an attempt at a batch did not commit.
enum Abort {
    /// The transaction failed: every command in it fails with this.
    Failed(Error),
    /// A command failed after it had written, with no savepoint to undo it alone: the
    /// attempt was rolled back and the batch runs again, with savepoints.
    Retry,
}

/// Runs one batch in one transaction, and answers for every command in it.
///
/// The batch is first tried without savepoints. On SQLite each one copies every page a
/// command touches into the statement journal, a sizeable share of the writer's time; on
/// PostgreSQL each costs two round trips per command. They are almost never needed, since
/// a command that fails (a refusal, a conflict, bad input) does so before it writes. If
/// one fails after writing, or the database refused a statement (which on PostgreSQL
/// aborts the transaction), the whole attempt is rolled back and the batch runs again
/// with a savepoint per command.
async fn run_batch(
    parts: &Parts<'_>,
    last: &mut Timestamp,
    watch: &mut Watch,
    stats: &Stats,
    jobs: Vec<Job>,
) -> Vec<Reply> {
    let (alarm, clock_behind) = (watch.alarm.clone(), watch.clock_behind);
    let savepoints = jobs.iter().any(|j| j.command.reaches_outside());
    // Only PostgreSQL takes the lock late (see `WriteTx::begin_late`), and only a writer
    // that kept the state its last batch left.
    let late = parts.db.backend() == Backend::Postgres
        && watch.kept.is_some()
        && !savepoints
        && !jobs.iter().any(|j| j.command.signs());
    let mut outcome = attempt(parts, last, watch, &jobs, savepoints, late).await;
    // Begun late, the attempt failed if anyone else wrote before it took the lock, as
    // well as for the reasons below: it runs again with the lock first, then (if that
    // fails too) with savepoints.
    let retries: &[bool] = if late { &[false, true] } else { &[true] };
    for &savepoints in retries {
        if !matches!(outcome, Err(Abort::Retry)) {
            break;
        }
        // What the attempt changed in the watch was never committed.
        (watch.alarm, watch.clock_behind) = (alarm.clone(), clock_behind);
        stats
            .retried
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        outcome = attempt(parts, last, watch, &jobs, savepoints, false).await;
    }
    let replies = jobs.into_iter().map(|j| j.reply);
    match outcome {
        Ok(results) => replies.zip(results).collect(),
        Err(Abort::Failed(e)) => fail_all(replies, &e),
        // Only an attempt without savepoints asks for another.
        Err(Abort::Retry) => fail_all(
            replies,
            &Error::NotSaved("the batch was not retried".into()),
        ),
    }
}

/// One attempt at a batch: a command that fails is rolled back to its savepoint alone
/// (`savepoints`), or, without them, sinks the attempt if it wrote anything; a failure
/// of the transaction itself fails every command in it.
async fn attempt(
    &Parts {
        db,
        conn,
        seal,
        signer,
        clock,
    }: &Parts<'_>,
    last: &mut Timestamp,
    watch: &mut Watch,
    jobs: &[Job],
    savepoints: bool,
    late: bool,
) -> Result<Vec<Result<Outcome, Error>>, Abort> {
    let begun = match watch.kept.as_ref().filter(|_| late) {
        Some(kept) => WriteTx::begin_late(db, conn, seal, kept.next_idx).await,
        None => WriteTx::begin(db, conn, seal).await,
    };
    let mut tx = begun.map_err(|e| Abort::Failed(e.into()))?;
    // Before signing, the tree is read back as stored: a node changed behind the writer's
    // back then shows as a root other than the one it left, and nothing is signed. (Plain
    // writes extend the writer's own frontier; what they would miss, verify finds.)
    let signs = jobs.iter().any(|j| j.command.signs());
    let left = (watch.kept.as_ref()).map(|k| (k.frontier.size(), k.frontier.root()));
    let kept = watch.kept.clone().filter(|_| !signs);
    let mut state = apply::State::load(&mut tx, watch.tree, kept)
        .await
        .map_err(Abort::Failed)?;
    // Whatever the writer itself appends below also moves the head.
    let start_size = state.next_idx;
    // The log's time never runs backwards (pages, date filters and archive cuts follow
    // it), and another process may have appended since this writer last did.
    *last = (*last).max(state.last_ts);
    if watch.alarm.is_none()
        && watch.tree
        && let Some(problem) = changed_behind_our_back(&mut tx, &state, left).await
    {
        tracing::error!(%problem, "the audit log was changed outside Keeptrack; no more checkpoints");
        let now = clock.now().max(*last);
        apply::alarm(&mut tx, &mut state, &problem, now)
            .await
            .map_err(Abort::Failed)?;
        watch.alarm = Some(problem);
    }
    state.alarm.clone_from(&watch.alarm);
    // A wall clock behind the log is not used: entries carry the log's time until the
    // clock catches up. The first batch to see it behind records that once.
    let wall = clock.now();
    let behind = last.as_microsecond() - wall.as_microsecond() > CLOCK_SLACK_MICROS;
    if behind && !watch.clock_behind {
        tracing::warn!(%wall, log_time = %last, "the clock is behind the audit log");
        apply::clock_backwards(&mut tx, &mut state, wall, *last)
            .await
            .map_err(Abort::Failed)?;
    }
    watch.clock_behind = behind;
    if tx.reads_ahead() {
        read_ahead(&mut tx, jobs).await.map_err(Abort::Failed)?;
    }
    let mut results = Vec::with_capacity(jobs.len());
    // Another process may have changed a user since the last batch.
    let mut actors = std::mem::take(&mut watch.actors);
    if !tx.undisturbed() {
        actors.clear();
    }
    for job in jobs {
        let now = clock.now().max(*last);
        *last = now;
        let mark = state.mark();
        let keeps_actors = job.command.keeps_actors();
        let written = tx.rows_written();
        let command = job.command.clone();
        let opened = if savepoints {
            tx.savepoint().await
        } else {
            Ok(())
        };
        let outcome = match opened {
            Ok(()) => {
                apply::apply(
                    &mut tx,
                    &mut state,
                    &mut actors,
                    &job.ctx,
                    command,
                    now,
                    signer,
                )
                .await
            }
            Err(e) => Err(e.into()),
        };
        if !keeps_actors {
            actors.clear();
        }
        let settled = match (&outcome, savepoints) {
            (Ok(_), true) => tx.release().await,
            (Ok(_), false) => Ok(()),
            (Err(_), true) => {
                state.undo(mark);
                tx.rollback_to_savepoint().await
            }
            (Err(e), false) => {
                // Nothing to undo in the database only if the command was refused and
                // wrote nothing before that.
                if e.is_storage() || tx.rows_written() != written {
                    return Err(Abort::Retry);
                }
                state.undo(mark);
                Ok(())
            }
        };
        results.push(outcome);
        settled.map_err(|e| Abort::Failed(e.into()))?;
    }
    let keys = state.next_idx - watch.keyed >= INDEX_EVERY;
    let finished = async {
        // Before the batch's entries are stored: on PostgreSQL the copy goes with them,
        // in one statement, and would otherwise have to send them first to see them.
        if keys {
            audit_log::index_tail(&mut tx).await?;
        }
        let moved = state.next_idx != start_size || state.rebuilt;
        state.finish(&mut tx, moved).await?;
        tx.send_last().await.map_err(Error::from)
    }
    .await;
    match finished {
        // Writes held back (PostgreSQL) went with these statements: one the database
        // refused may be any command's, which a run with savepoints tells apart. Unless
        // the answer was lost on its way, a refused last statement committed nothing.
        Err(e) if !savepoints && e.is_storage() && !tx.in_doubt() => return Err(Abort::Retry),
        Err(e) => return Err(Abort::Failed(e)),
        Ok(()) => {}
    }
    // Not run again if it fails: a commit whose answer was lost may have happened.
    tx.commit().await.map_err(|e| Abort::Failed(e.into()))?;
    watch.logged = state.next_idx;
    if keys {
        // The copy may not have seen the batch's own entries (see `index_tail`).
        watch.keyed = start_size;
    }
    state.committed();
    watch.kept = Some(state);
    watch.actors = actors;
    Ok(results)
}

/// Reads the records the batch's commands name, one statement per kind, before they
/// run, with their notes where a command reads those. A kind with one record and no
/// notes to read is left to its command, unless the lock is still to be taken: reading
/// it ahead would save nothing.
async fn read_ahead(tx: &mut WriteTx, jobs: &[Job]) -> Result<(), Error> {
    let mut wanted: Vec<(RecordKind, Vec<i64>, bool)> = Vec::new();
    for job in jobs {
        let Some((kind, id)) = job.command.target() else {
            continue;
        };
        let notes = job.command.reads_notes();
        match wanted.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, ids, with_notes)) => {
                *with_notes |= notes;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            None => wanted.push((kind, vec![id], notes)),
        }
    }
    // Begun late, a command that read its record itself would take the lock to do so.
    let even_one = tx.begins_late();
    for (kind, ids, notes) in &wanted {
        if ids.len() > 1 || *notes || even_one {
            records::prefetch_for_write(tx, *kind, ids, *notes).await?;
        }
    }
    Ok(())
}

fn fail_all(
    replies: impl Iterator<Item = tokio::sync::oneshot::Sender<Result<Outcome, Error>>>,
    error: &Error,
) -> Vec<Reply> {
    let reason = error.to_string();
    tracing::error!(error = %reason, "a write batch failed and was rolled back");
    replies
        .map(|r| (r, Err(Error::NotSaved(reason.clone()))))
        .collect()
}

/// Whether the tree no longer contains the tree this writer left: its root at that size,
/// recomputed from the stored nodes, must be the same.
async fn changed_behind_our_back(
    tx: &mut WriteTx,
    state: &apply::State,
    left: Option<(u64, Hash)>,
) -> Option<String> {
    let (size, root) = left?;
    if state.frontier.size() < size {
        return Some(format!(
            "the log has {} entries; this writer left it with {size}",
            state.frontier.size()
        ));
    }
    // Nobody appended since: the frontier is the writer's own, or was just built from the
    // stored nodes at this size (before signing); either way reading them again would
    // tell nothing more.
    if state.frontier.size() == size {
        return (state.frontier.root() != root)
            .then(|| format!("the first {size} entries no longer have the root this writer left"));
    }
    let ids = Frontier::node_ids(size);
    let nodes = match audit_log::nodes_for_write(tx, &ids).await {
        Ok(n) => n,
        Err(e) => return Some(format!("its tree cannot be read: {e}")),
    };
    let map: BTreeMap<(u8, u64), Hash> = nodes.into_iter().map(|(l, i, h)| ((l, i), h)).collect();
    if ids.iter().any(|id| !map.contains_key(id)) {
        return Some(format!(
            "tree nodes under the first {size} entries are gone"
        ));
    }
    (Frontier::from_nodes(size, |l, i| map[&(l, i)]).root() != root)
        .then(|| format!("the first {size} entries no longer have the root this writer left"))
}
