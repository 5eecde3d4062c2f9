//! The one write path. Every change is a [`Command`] that runs in one transaction with
//! its audit entry: load, check, write, read back, diff, log, commit — then answer.
//! A single writer task takes whatever commands are waiting, runs them so that each can
//! fail alone, and commits them together (group commit).

mod apply;
mod command;
mod error;
pub mod password;
mod writer;

use tokio::sync::{mpsc, oneshot};

pub use command::{
    ActorRef, Archived, Command, Context, Idempotency, MAX_ARCHIVE, NewSession, Outcome,
};
pub use error::Error;

use crate::audit::checkpoint::Signer;
use crate::clock::Clock;
use crate::domain::record::Fields;
use crate::store::{Db, WriteConn};

/// The token that opens a [`crate::store::WriteTx`]. Its field is private to this module,
/// so nothing outside the ledger can write.
pub struct Seal(());

/// How many commands may wait for the writer before submitters wait too.
const QUEUE: usize = 8192;

struct Job {
    ctx: Context,
    command: Command,
    reply: oneshot::Sender<Result<Outcome, Error>>,
}

/// A handle to the writer. Cheap to clone; the writer stops when the last clone is gone.
#[derive(Clone)]
pub struct Ledger {
    db: Db,
    queue: mpsc::Sender<Job>,
    stats: std::sync::Arc<writer::Stats>,
    access_changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Ledger {
    /// Starts the writer. A new database is installed first: default lists, the log's
    /// origin and its first entry.
    pub async fn start(db: Db) -> Result<Self, Error> {
        Self::start_signing(db, None).await
    }

    /// Starts the writer with the log's signing key, so it can make checkpoints.
    pub async fn start_signing(db: Db, signer: Option<Signer>) -> Result<Self, Error> {
        Self::start_with_clock(db, signer, Clock::default()).await
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether the writer is still taking commands.
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Transactions committed and commands run by this process's writer.
    pub fn batch_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.stats.batches.load(Relaxed),
            self.stats.commands.load(Relaxed),
        )
    }

    /// Batches this process's writer ran again: with a savepoint per command, because one
    /// command failed after it had written (or the database refused a statement), or on
    /// PostgreSQL under the log's lock, because another writer wrote before a batch begun
    /// without it took it. Rare with one server, and each costs the batch's time again.
    pub fn batches_retried(&self) -> u64 {
        self.stats
            .retried
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many commands wait for the writer.
    pub fn queue_depth(&self) -> usize {
        QUEUE - self.queue.capacity()
    }

    /// Commands this process's writer was given that may have changed who may do what
    /// ([`Command::changes_access`]), counted once each was answered, whatever the answer
    /// (one whose commit went unanswered may still have landed).
    pub fn access_changes(&self) -> u64 {
        self.access_changes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs a command; answers once it is durable (or with why nothing was written).
    pub async fn submit(&self, ctx: Context, command: Command) -> Result<Outcome, Error> {
        let changes_access = command.changes_access();
        let (reply, answer) = oneshot::channel();
        let sent = self
            .queue
            .send(Job {
                ctx,
                command,
                reply,
            })
            .await;
        let result = match sent {
            Ok(()) => answer.await.unwrap_or(Err(Error::Unavailable)),
            Err(_) => Err(Error::Unavailable),
        };
        if changes_access {
            self.access_changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }

    /// Adds a user, hashing the password first.
    pub async fn create_user(
        &self,
        ctx: Context,
        fields: Fields,
        password: &str,
    ) -> Result<Outcome, Error> {
        let password_hash = password::hash(password)
            .await
            .map_err(|e| Error::Invalid(vec![e]))?;
        self.submit(
            ctx,
            Command::CreateUser {
                fields,
                password_hash,
            },
        )
        .await
    }

    /// Sets a user's password.
    pub async fn set_password(
        &self,
        ctx: Context,
        user_id: i64,
        password: &str,
    ) -> Result<Outcome, Error> {
        let password_hash = password::hash(password)
            .await
            .map_err(|e| Error::Invalid(vec![e]))?;
        self.submit(
            ctx,
            Command::SetPassword {
                user_id,
                password_hash,
            },
        )
        .await
    }

    /// Starts the writer with its own clock (tests move it to make time jump).
    pub async fn start_with_clock(
        db: Db,
        signer: Option<Signer>,
        clock: Clock,
    ) -> Result<Self, Error> {
        Self::start_writer(db, signer, clock, true).await
    }

    /// A ledger whose appends write no Merkle tree: only for the benchmark that measures
    /// what the tree costs a write. Its log has no tree, so `audit verify` fails it.
    #[doc(hidden)]
    pub async fn start_without_tree(db: Db) -> Result<Self, Error> {
        Self::start_writer(db, None, Clock::default(), false).await
    }

    async fn start_writer(
        db: Db,
        signer: Option<Signer>,
        clock: Clock,
        tree: bool,
    ) -> Result<Self, Error> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let stats = std::sync::Arc::new(writer::Stats::default());
        let conn = WriteConn::open(&db, &Seal(()))?;
        let writer = writer::run(db.clone(), conn, jobs, signer, clock, stats.clone(), tree);
        // A thread of its own: SQLite's statements run on the thread that polls them, so
        // they never hold up the runtime's; PostgreSQL's connection opens on this
        // runtime, so its replies reach the writer at once instead of waiting for one of
        // the server's threads to finish the request it is on.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::NotSaved(format!("cannot start the writer: {e}")))?;
        std::thread::Builder::new()
            .name("keeptrack-writer".into())
            .spawn(move || runtime.block_on(writer))
            .map_err(|e| Error::NotSaved(format!("cannot start the writer: {e}")))?;
        let ledger = Self {
            db,
            queue,
            stats,
            access_changes: std::sync::Arc::default(),
        };
        ledger.submit(Context::system(), Command::Install).await?;
        Ok(ledger)
    }
}
