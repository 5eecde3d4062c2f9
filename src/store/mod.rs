//! The only code that speaks SQL. One `Db` over SQLite or PostgreSQL; every query is
//! written once in the SQL both understand (`$1` binds, `RETURNING`, `ON CONFLICT`).
//! Reads take a `&Db`; writes take a [`WriteTx`], which only the ledger can open.

pub mod audit_log;
pub mod auth;
pub mod history;
mod key_file;
pub mod lists;
pub mod log_reader;
pub mod notes;
pub mod preferences;
mod readers;
pub mod records;
mod statement;

pub use key_file::attach as attach_key_file;
pub use readers::Readers;
pub(crate) use statement::{Held, Key, Run, Shape, Statement, statement};

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use sqlx::{
    ColumnIndex, Database, Decode, Encode, PgConnection, Postgres, Row, Sqlite, SqliteConnection,
    Transaction, Type,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
    query::Query,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("unsupported database URL: use sqlite://FILE or postgres://...")]
    Url,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("cannot start the audit log's key copier: {0}")]
    Copier(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pooled connection idle this long is pinged before use, so one the database dropped
/// meanwhile (a restart, an idle timeout) is replaced instead of failing a request.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// sqlx pings every connection it hands out by default: on PostgreSQL a round trip
/// before every read and every write transaction, which under load doubled the trips
/// of a one-statement read. A connection in use moments ago is alive.
fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(true)
    })
}

/// Rows an SQLite connection's worker thread may run ahead of its reader. sqlx's default
/// (50) makes a long read (verify, export) hand over thread to thread every few rows,
/// which costs more than reading them.
const ROW_BUFFER: usize = 4096;

/// Direct read connections per SQLite file: enough that the server's threads and the
/// blocking pool's seldom share one.
const READERS: usize = 4;

/// PostgreSQL connections for reads when none is configured: one per core and one more.
/// More backends than cores busy at once only take turns on them, and each turn costs:
/// on a 2-core machine, a pool of 16 spent 1.3–1.7× the database's CPU per history read
/// of a pool of 3 (docs/PERFORMANCE.md). The writer has a connection of its own besides.
pub fn default_read_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores + 1).unwrap_or(u32::MAX)
}

/// A pool of connections to one database; on an SQLite file, also the connections short
/// reads run on directly (see [`Readers`]).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(sqlx::SqlitePool, Readers),
    Postgres(sqlx::PgPool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Opens (creating an SQLite file if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, default_read_connections()).await
    }

    /// As [`Db::open`], with `read_connections` pooled for reads on PostgreSQL.
    pub async fn open_with(url: &str, read_connections: u32) -> Result<Self> {
        let db = Self::connect_with(url, read_connections).await?;
        db.migrate().await?;
        if let Self::Sqlite(pool, _) = &db {
            key_file::settle(pool).await?;
        }
        Ok(db)
    }

    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, default_read_connections()).await
    }

    async fn connect_with(url: &str, read_connections: u32) -> Result<Self> {
        if url.starts_with("sqlite:") {
            // FULL: under NORMAL a committed transaction may roll back after a power cut,
            // which after a signed checkpoint would look like tampering.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("trusted_schema", "OFF")
                .row_buffer_size(ROW_BUFFER);
            let main = options.get_filename().to_owned();
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .before_acquire(ping_if_idle)
                .after_connect(move |conn, _| {
                    let main = main.clone();
                    Box::pin(async move { key_file::attach(conn, &main).await })
                })
                .connect_with(options)
                .await?;
            key_file::prepare(&pool).await?;
            let readers = match file_of(&pool) {
                Some(path) => Readers::open(&path, READERS)?,
                None => Readers::default(),
            };
            Ok(Self::Sqlite(pool, readers))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = pg_pool(read_connections.max(1))
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(Error::Url)
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self {
            Self::Sqlite(_, _) => sqlx::migrate!("migrations/sqlite"),
            Self::Postgres(_) => sqlx::migrate!("migrations/postgres"),
        };
        // A server role with no right to create tables (docs/postgres-role.sql) opens a
        // database its owner migrated: the migrator would try to create its own table.
        if self.has_applied(&migrator).await {
            return Ok(());
        }
        match self {
            Self::Sqlite(p, _) => migrator.run(p).await?,
            Self::Postgres(p) => migrator.run(p).await?,
        }
        Ok(())
    }

    /// Whether every migration is applied, each with the checksum this build has.
    async fn has_applied(&self, migrator: &sqlx::migrate::Migrator) -> bool {
        let sql = "SELECT version, checksum FROM _sqlx_migrations WHERE success";
        let applied: Vec<(i64, Vec<u8>)> = match self {
            Self::Sqlite(p, _) => sqlx::query_as(sql).fetch_all(p).await,
            Self::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .unwrap_or_default();
        migrator.iter().all(|m| {
            applied
                .iter()
                .any(|(v, sum)| *v == m.version && sum[..] == m.checksum[..])
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_, _) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(p, _) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    /// A consistent copy of a live SQLite database (`VACUUM INTO`), safe while the server
    /// writes. PostgreSQL is backed up with its own tools (`pg_dump`).
    pub async fn backup_into(&self, path: &std::path::Path) -> Result<()> {
        let Self::Sqlite(pool, _) = self else {
            return Err(Error::Unsupported(
                "back up PostgreSQL with pg_dump (see the README)",
            ));
        };
        let target = path
            .to_str()
            .ok_or(Error::Unsupported("the backup path must be UTF-8"))?;
        let sql = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
        Ok(())
    }

    /// PostgreSQL's pool for reads: connections busy now and the most it opens (none on
    /// SQLite, whose short reads run on connections of their own).
    pub fn read_pool(&self) -> Option<(u32, u32)> {
        match self {
            Self::Postgres(p) => {
                let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
                Some((
                    p.size().saturating_sub(idle),
                    p.options().get_max_connections(),
                ))
            }
            Self::Sqlite(..) => None,
        }
    }

    pub(crate) async fn acquire(&self) -> Result<Pooled> {
        Ok(match self {
            Self::Sqlite(p, _) => Pooled::Sqlite(p.acquire().await?),
            Self::Postgres(p) => Pooled::Postgres(p.acquire().await?),
        })
    }

    /// Where a short read runs: a direct connection on an SQLite file, else the pool's.
    pub(crate) async fn reader(&self) -> Result<Reader<'_>> {
        Ok(match self {
            Self::Sqlite(_, readers) => match readers.pick() {
                Some(conn) => Reader::Direct(conn),
                None => Reader::Pooled(self.acquire().await?),
            },
            Self::Postgres(_) => Reader::Pooled(self.acquire().await?),
        })
    }
}

/// A connection to an SQLite file that the store calls directly (the writer's, the
/// readers', the keys' copier), with the settings every such connection shares. URI
/// names are for attaching the keys' file read-only (`key_file::attach_read_only`).
fn open_direct(path: &std::path::Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    // Plans that do not depend on bound values. Otherwise SQLite marks a statement stale
    // whenever a value its planner looked at is bound (`LIMIT $n` is one), and prepares
    // it again at its next step: a third of a history page's CPU. Our queries' plans come
    // from their indexes, not their values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// The file of an SQLite pool; none for an in-memory database, which no connection
/// outside the pool can see (sqlx names those `file:sqlx-in-memory-N`).
fn file_of(pool: &sqlx::SqlitePool) -> Option<std::path::PathBuf> {
    let path = pool.connect_options().get_filename().to_owned();
    let name = path.to_string_lossy();
    let memory = name.is_empty() || name == ":memory:" || name.starts_with("file:");
    (!memory).then_some(path)
}

/// A connection for short reads (see [`Db::reader`]).
pub(crate) enum Reader<'d> {
    Direct(&'d Mutex<rusqlite::Connection>),
    Pooled(Pooled),
}

impl Reader<'_> {
    pub(crate) fn run(&mut self) -> Run<'_> {
        match self {
            Self::Direct(conn) => Run::Direct(conn),
            Self::Pooled(p) => p.run(),
        }
    }
}

/// A connection taken from the pool for reads.
pub(crate) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }

    pub(crate) fn run(&mut self) -> Run<'_> {
        Run::Sqlx(self.conn())
    }
}

/// A borrowed connection of either backend: the shape every query function takes.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

/// Runs the same code against whichever backend `$conn` is; `$c` is the connection.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

impl Conn<'_> {
    /// The same connection, for one statement more before this borrow is used.
    pub(crate) fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }
}

fn pg_pool(connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
        .before_acquire(ping_if_idle)
}

/// The writer's connection, kept for the writer's life. On an SQLite file it is a
/// connection of its own, called directly (see [`statement`]), with its statements
/// prepared once. On PostgreSQL it is a connection of its own beside the readers' pool,
/// so that a batch never queues behind the reads waiting for a connection; in-memory
/// SQLite uses the pool.
pub struct WriteConn {
    direct: Option<Arc<Mutex<rusqlite::Connection>>>,
    /// Copies the log's query keys to their file after commits (SQLite files).
    copier: Option<Arc<key_file::Copier>>,
    postgres: Option<Arc<PgWriter>>,
    /// SQLite's `data_version` when the last transaction began, which moves only when
    /// another connection commits; on PostgreSQL, the head's count of write
    /// transactions as this writer's last one left it.
    seen: Arc<AtomicI64>,
}

impl WriteConn {
    pub fn open(db: &Db, _seal: &crate::ledger::Seal) -> Result<Self> {
        let pool = match db {
            Db::Sqlite(pool, _) => pool,
            Db::Postgres(readers) => {
                // The writer's statements find rows by key, many by arrays of keys whose
                // length changes from batch to batch. PostgreSQL's default plans each
                // such execution again (its custom plan always looks cheaper than a
                // generic one guessing the arrays' length), about a quarter of its
                // time per write; one plan serves them all. Like any plan PostgreSQL
                // keeps, one made while a table was small lasts until autovacuum next
                // analyses that table.
                let options = (*readers.connect_options())
                    .clone()
                    .options([("plan_cache_mode", "force_generic_plan")]);
                return Ok(Self {
                    postgres: Some(Arc::new(PgWriter {
                        options,
                        idle: Mutex::new(None),
                    })),
                    ..Self::pooled()
                });
            }
        };
        let Some(path) = file_of(pool) else {
            return Ok(Self::pooled());
        };
        let conn = open_direct(&path)?;
        // The rest of the pool's settings (see `Db::connect`); synchronous is per
        // connection.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A batch run again after a failed command has a savepoint per command, and
        // SQLite copies every page a savepoint first touches to its statement journal
        // (as it does for a statement that may need undoing alone): in memory, not a
        // temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.set_prepared_statement_cache_capacity(256);
        key_file::attach_read_only(&conn, &path)?;
        Ok(Self {
            direct: Some(Arc::new(Mutex::new(conn))),
            copier: Some(Arc::new(key_file::Copier::start(&path)?)),
            ..Self::pooled()
        })
    }

    /// Asks the key copier of an SQLite file for a copy now; false where there is none
    /// (keys are then copied in a write transaction, see `audit_log::index_tail`).
    pub fn wake_key_copier(&self) -> bool {
        self.copier.as_ref().map(|c| c.wake()).is_some()
    }

    fn pooled() -> Self {
        Self {
            direct: None,
            copier: None,
            postgres: None,
            seen: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }
}

/// The one kind of transaction that may write. Opened only by the ledger's writer.
pub struct WriteTx {
    inner: TxInner,
    undisturbed: bool,
    /// Rows the statements through sqlx have changed (see [`WriteTx::rows_written`]).
    written: u64,
    /// The log's size, when taking the lock read it.
    head: Option<i64>,
    /// The head's count of write transactions once this one commits (PostgreSQL), for
    /// the writer's next transaction to compare with.
    count: Option<(Arc<AtomicI64>, i64)>,
    /// Records read ahead for the batch's commands (see [`records::prefetch_for_write`]),
    /// each as stored now: one is handed out once, and dropped when its row is written.
    prefetched: HashMap<(crate::domain::record::RecordKind, i64), records::StoredRecord>,
    /// The newest notes revision of records read ahead with their notes (none where the
    /// notes were never written), kept current by the batch's own revisions: a line
    /// appended to them need read nothing. Dropped at the first savepoint, since a
    /// rollback to one would take back revisions it counts.
    notes_ahead: HashMap<(crate::domain::record::RecordKind, i64), Option<notes::Revision>>,
    /// Writes held back for the next statement (PostgreSQL, until a savepoint).
    held: Option<Held>,
    /// Where the head goes once the batch's entries are stored (PostgreSQL): moved by
    /// the transaction's last statement, with what it still holds.
    head_to: Option<(i64, [u8; 32])>,
    /// The last statement failed in a way that leaves unknown whether it committed (see
    /// [`WriteTx::begin_late`]).
    in_doubt: bool,
}

/// Where a PostgreSQL write transaction stands with the log's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Taken: `BEGIN` went with the head's update.
    Taken,
    /// Not taken yet: the first statement that may write takes it, or the last one
    /// commits without it, either checking that the head's count of write transactions
    /// is still this one (see [`WriteTx::begin_late`]).
    Late(i64),
    /// Never taken: the transaction's last statement committed it.
    Ended,
}

/// How the head refuses a transaction begun late when another writer has written since:
/// its count of write transactions would be set to NULL.
const LATE_GUARD: &str = "writes = CASE WHEN writes = $1 THEN writes + 1 END";

/// Takes the log's lock on `conn` for a transaction begun late, expecting the head's
/// count of write transactions to be `writes`: `BEGIN` and the head's update go in one
/// round trip, as [`WriteTx::begin`]'s do.
pub(crate) async fn take_late_lock(conn: &mut PgConnection, writes: i64) -> Result<()> {
    // `writes` is a number this writer read, so it may be spelled into the text.
    let sql = format!(
        "BEGIN; UPDATE log_head SET {} WHERE id = 1",
        LATE_GUARD.replace("$1", &writes.to_string())
    );
    sqlx::raw_sql(trusted(sql)).execute(conn).await?;
    Ok(())
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(PgTx),
    Direct(DirectTx),
}

/// The writer's PostgreSQL connection between transactions, with when it was last used.
/// Held by the writer itself rather than a pool of one: handing a pooled connection
/// back goes through a task of the pool's, which the next batch then waited for (about
/// 90 µs of a batch of four W1 changes).
struct PgWriter {
    options: PgConnectOptions,
    idle: Mutex<Option<(PgConnection, std::time::Instant)>>,
}

/// How long the writer waits to connect to PostgreSQL before the batch fails (a pool's
/// default wait for a connection).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl PgWriter {
    /// The connection left by the last transaction, checked first if it has been idle
    /// long enough for the database to have dropped it (as the readers' pool does), or a
    /// new one.
    async fn take(&self) -> Result<PgConnection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((mut conn, since)) = idle {
            if since.elapsed() < PING_AFTER_IDLE {
                return Ok(conn);
            }
            if sqlx::Connection::ping(&mut conn).await.is_ok() {
                return Ok(conn);
            }
        }
        let connect = <PgConnection as sqlx::Connection>::connect_with(&self.options);
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(Error::Sql(sqlx::Error::PoolTimedOut)),
        }
    }
}

/// A transaction on the writer's PostgreSQL connection, begun by hand so that `BEGIN`
/// goes in one round trip with the statement that takes the lock (sqlx's own waits for
/// `BEGIN`'s answer first). Ended, it hands the connection back to the writer; dropped
/// before it ends, it closes the connection, which rolls it back, and the next
/// transaction opens another.
struct PgTx {
    conn: Option<PgConnection>,
    home: Arc<PgWriter>,
    /// Close the connection rather than keep it: a transaction may be open on it.
    open: bool,
    lock: Lock,
}

impl PgTx {
    /// The writer's connection, for a transaction that stands with the lock as `lock`
    /// says. Until it ends it counts as open: dropped before then, it is closed.
    async fn take(home: Arc<PgWriter>, lock: Lock) -> Result<Self> {
        Ok(Self {
            conn: Some(home.take().await?),
            home,
            open: true,
            lock,
        })
    }

    fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("the connection leaves a transaction only when it is dropped")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.open
        {
            *self
                .home
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((conn, std::time::Instant::now()));
        }
    }
}

/// A transaction on the writer's own SQLite connection; rolled back unless committed.
struct DirectTx {
    conn: Arc<Mutex<rusqlite::Connection>>,
    open: bool,
    /// Woken to copy the log's keys once this commits, if asked
    /// ([`WriteTx::copy_keys_after`]).
    copier: Option<Arc<key_file::Copier>>,
    copy_keys: bool,
}

impl DirectTx {
    /// Runs one statement without arguments (BEGIN, SAVEPOINT, ...), prepared once.
    fn exec(&self, sql: &str) -> Result<()> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        conn.prepare_cached(sql)?.raw_execute()?;
        Ok(())
    }

    fn data_version(&self) -> Result<i64> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(conn.pragma_query_value(None, "data_version", |row| row.get(0))?)
    }
}

impl Drop for DirectTx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.exec("ROLLBACK");
        }
    }
}

impl WriteTx {
    /// Begins a write transaction that holds the log's single-writer lock: SQLite's
    /// `BEGIN IMMEDIATE`, PostgreSQL's row lock on `log_head`. The seal is a value only the
    /// ledger can make, so the compiler keeps every write on the ledger's path.
    ///
    /// On PostgreSQL the lock is taken by counting the transaction in the head
    /// (`writes`), which every writer of every Keeptrack process does: a count one past
    /// the one this writer left means nobody else has written since, as SQLite's
    /// `data_version` tells its writer.
    pub async fn begin(db: &Db, conn: &WriteConn, _seal: &crate::ledger::Seal) -> Result<Self> {
        let mut undisturbed = false;
        let mut head = None;
        let mut count = None;
        let inner = match (db, &conn.direct) {
            (Db::Sqlite(_, _), Some(direct)) => {
                let mut tx = DirectTx {
                    conn: direct.clone(),
                    open: false,
                    copier: conn.copier.clone(),
                    copy_keys: false,
                };
                tx.exec("BEGIN IMMEDIATE")?;
                tx.open = true;
                let version = tx.data_version()?;
                undisturbed = conn.seen.swap(version, Ordering::Relaxed) == version;
                TxInner::Direct(tx)
            }
            (Db::Sqlite(p, _), None) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            (Db::Postgres(_), _) => {
                let home = conn.postgres.clone().ok_or_else(|| {
                    Error::Corrupt("the writer has no PostgreSQL connection".into())
                })?;
                let mut tx = PgTx::take(home, Lock::Taken).await?;
                let row = sqlx::raw_sql(
                    "BEGIN; UPDATE log_head SET writes = writes + 1 WHERE id = 1 \
                     RETURNING size, writes",
                )
                .fetch_one(tx.conn())
                .await?;
                let (size, writes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                // Known again only once this one commits: after a rollback, the next
                // takes itself to be disturbed, the safe way to be wrong.
                undisturbed = conn.seen.swap(i64::MIN, Ordering::Relaxed) == writes - 1;
                head = Some(size);
                count = Some((conn.seen.clone(), writes));
                TxInner::Postgres(tx)
            }
        };
        Ok(Self::started(inner, undisturbed, head, count))
    }

    /// A transaction just begun, with what beginning it learnt; on PostgreSQL it holds
    /// writes back (see [`Held`]) until a savepoint.
    fn started(
        inner: TxInner,
        undisturbed: bool,
        head: Option<i64>,
        count: Option<(Arc<AtomicI64>, i64)>,
    ) -> Self {
        let held = matches!(inner, TxInner::Postgres(_)).then(Held::default);
        Self {
            inner,
            undisturbed,
            written: 0,
            head,
            count,
            prefetched: HashMap::new(),
            notes_ahead: HashMap::new(),
            held,
            head_to: None,
            in_doubt: false,
        }
    }

    /// Begins a write transaction whose lock waits, on PostgreSQL, until its first
    /// statement that may write, so that a batch whose only such statement is its last
    /// (reads ahead, then every write held) commits in that statement: two round trips
    /// where [`WriteTx::begin`] and `COMMIT` make four. Whichever statement takes the lock
    /// checks that the head's count of write transactions is still the one this writer's
    /// last transaction left, and fails if another writer has written since: what the
    /// batch read and what the writer kept (the head's `size`, the acting users) is then
    /// as that transaction left it, and the batch runs again with `begin`. Elsewhere, or
    /// with nothing kept to check against, it is `begin`.
    pub async fn begin_late(
        db: &Db,
        conn: &WriteConn,
        seal: &crate::ledger::Seal,
        size: i64,
    ) -> Result<Self> {
        if let (Db::Postgres(_), Some(home)) = (db, &conn.postgres) {
            // Unknown again until this one commits, as in `begin`.
            let writes = conn.seen.swap(i64::MIN, Ordering::Relaxed);
            if writes != i64::MIN {
                let tx = PgTx::take(home.clone(), Lock::Late(writes)).await?;
                let count = Some((conn.seen.clone(), writes + 1));
                return Ok(Self::started(
                    TxInner::Postgres(tx),
                    true,
                    Some(size),
                    count,
                ));
            }
        }
        Self::begin(db, conn, seal).await
    }

    /// Whether its lock is still to be taken (see [`WriteTx::begin_late`]).
    pub(crate) fn begins_late(&self) -> bool {
        matches!(&self.inner, TxInner::Postgres(t) if matches!(t.lock, Lock::Late(_)))
    }

    /// Whether its last statement failed without telling whether it committed: the
    /// connection broke while a transaction begun late sent it.
    pub fn in_doubt(&self) -> bool {
        self.in_doubt
    }

    /// The log's size as taking the lock read it (PostgreSQL), saving a statement.
    pub fn head_at_lock(&self) -> Option<i64> {
        self.head
    }

    /// Whether nothing but this writer has written to the database since its previous
    /// transaction (known on its own SQLite connection and on PostgreSQL).
    pub fn undisturbed(&self) -> bool {
        self.undisturbed
    }

    /// Whether its statements are prepared once and kept (the writer's own SQLite
    /// connection), so that one statement text per size of a multi-row write would cost
    /// more than the rows it saves.
    pub(crate) fn prepares_once(&self) -> bool {
        matches!(self.inner, TxInner::Direct(_))
    }

    /// Asks for the log's query keys to be copied once this transaction commits, by a
    /// thread of their own into a file of their own (`key_file`); false where they are
    /// copied in the transaction itself (PostgreSQL, an in-memory database).
    pub(crate) fn copy_keys_after(&mut self) -> bool {
        match &mut self.inner {
            TxInner::Direct(t) if t.copier.is_some() => {
                t.copy_keys = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Postgres(_) => Backend::Postgres,
            TxInner::Sqlite(_) | TxInner::Direct(_) => Backend::Sqlite,
        }
    }

    /// Whether one statement may write to several tables (PostgreSQL's data-modifying
    /// `WITH`; SQLite has none).
    pub(crate) fn writes_tables_together(&self) -> bool {
        matches!(self.inner, TxInner::Postgres(_))
    }

    /// Whether each statement is a round trip to another process (PostgreSQL), so that
    /// reading a batch's records in one statement saves one per command.
    pub(crate) fn reads_ahead(&self) -> bool {
        matches!(self.inner, TxInner::Postgres(_))
    }

    /// Where the transaction's statements run.
    pub(crate) fn run(&mut self) -> Run<'_> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Run::Counted(Conn::Sqlite(t), &mut self.written, None, None),
            TxInner::Postgres(PgTx { conn, lock, .. }) => Run::Counted(
                Conn::Postgres(conn.as_mut().expect("a transaction keeps its connection")),
                &mut self.written,
                self.held.as_mut(),
                Some(lock),
            ),
            TxInner::Direct(t) => Run::Direct(&t.conn),
        }
    }

    /// Where the batch's reads ahead run: on PostgreSQL without taking a lock still to
    /// be taken, since whichever statement takes it checks that nobody wrote since (see
    /// [`WriteTx::begin_late`]). Nothing is held before them.
    pub(crate) fn run_ahead(&mut self) -> Run<'_> {
        match &mut self.inner {
            TxInner::Postgres(t) => Run::Sqlx(Conn::Postgres(t.conn())),
            TxInner::Sqlite(t) => Run::Counted(Conn::Sqlite(t), &mut self.written, None, None),
            TxInner::Direct(t) => Run::Direct(&t.conn),
        }
    }

    /// Has the transaction's last statement move the head to `size` and `root`, with
    /// the batch's entries held before it (PostgreSQL; see [`WriteTx::send_last`]).
    pub(crate) fn move_head(&mut self, size: i64, root: [u8; 32]) {
        self.head_to = Some((size, root));
    }

    /// Runs a write whose answer nobody reads, or on PostgreSQL holds it back to go with
    /// the transaction's next statement (see [`Held`]). It counts as written at once.
    pub(crate) async fn hold(&mut self, write: Statement, table: &'static str) -> Result<()> {
        let Some(held) = self.held.as_mut() else {
            return write.execute(self.run()).await.map(|_| ());
        };
        if held.touches(write.sql()) {
            self.send_held().await?;
        }
        self.written += 1;
        self.held.get_or_insert_default().hold(write, table);
        Ok(())
    }

    /// Whether writes whose answer the caller knows are held back for the next
    /// statement (PostgreSQL, until a savepoint): see [`WriteTx::hold_row`].
    pub(crate) fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Holds one write of `shape` to what `key` names, with its columns' values, to go
    /// with the transaction's next statement as one row of a multi-row write (see
    /// [`Held`]); what is held already goes first if the two would clash. Only while
    /// [`WriteTx::holds`]: elsewhere the caller runs its own statement. It counts as
    /// written at once.
    pub(crate) async fn hold_row(
        &mut self,
        shape: Shape,
        key: Key,
        row: Vec<SqlValue>,
    ) -> Result<()> {
        let Some(held) = self.held.as_ref() else {
            return Err(Error::Corrupt(format!(
                "nothing is held here: {}",
                shape.sql
            )));
        };
        if held.clashes(&shape, key) {
            self.send_held().await?;
        }
        self.written += 1;
        self.held.get_or_insert_default().hold_row(shape, key, row);
        Ok(())
    }

    /// Sends the writes held back, in a statement of their own (taking them leaves
    /// nothing held for it to join).
    pub async fn send_held(&mut self) -> Result<()> {
        match self.held.as_mut().and_then(Held::take) {
            Some(held) => held.execute(self.run()).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Sends what the transaction still holds with the head's move, as its last statement
    /// before `COMMIT`. A transaction begun late whose lock is still to be taken commits
    /// in it instead, the head's update checking that nobody wrote since (see
    /// [`WriteTx::begin_late`]); with nothing to write, it ends without a statement.
    pub async fn send_last(&mut self) -> Result<()> {
        let Self {
            inner: TxInner::Postgres(t),
            held,
            head_to,
            count,
            in_doubt,
            ..
        } = self
        else {
            return self.send_held().await;
        };
        let nothing_held = held.as_ref().is_none_or(Held::is_empty);
        let last = match (t.lock, head_to.take()) {
            (Lock::Late(writes), None) if nothing_held => {
                if let Some((_, after)) = count {
                    *after = writes;
                }
                (t.open, t.lock) = (false, Lock::Ended);
                return Ok(());
            }
            (Lock::Late(writes), None) => {
                statement(format!("UPDATE log_head SET {LATE_GUARD} WHERE id = 1")).bind(writes)
            }
            (Lock::Late(writes), Some((size, root))) => statement(format!(
                "UPDATE log_head SET {LATE_GUARD}, size = $2, root = $3 WHERE id = 1"
            ))
            .bind(writes)
            .bind(size)
            .bind(root.as_slice()),
            (_, Some((size, root))) => statement(audit_log::SET_HEAD)
                .bind(size)
                .bind(root.as_slice()),
            (_, None) => return self.send_held().await,
        };
        let last = match held.as_mut() {
            Some(held) => held.join(last),
            None => last,
        };
        let sent = last.execute(Run::Sqlx(Conn::Postgres(t.conn()))).await;
        if matches!(t.lock, Lock::Late(_)) {
            match &sent {
                // Committed, or refused and rolled back: the connection is as it was.
                Ok(_) | Err(Error::Sql(sqlx::Error::Database(_))) => {
                    (t.open, t.lock) = (false, Lock::Ended);
                }
                Err(_) => *in_doubt = true,
            }
        }
        sent.map(|_| ())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.send_last().await?;
        match self.inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(mut t) => {
                if t.lock == Lock::Taken {
                    sqlx::raw_sql("COMMIT").execute(t.conn()).await?;
                }
                t.open = false;
            }
            TxInner::Direct(mut t) => {
                t.exec("COMMIT")?;
                t.open = false;
                if let Some(copier) = t.copier.as_ref().filter(|_| t.copy_keys) {
                    copier.wake();
                }
            }
        }
        if let Some((seen, writes)) = self.count {
            seen.store(writes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A count of the rows the transaction's statements have inserted, updated or
    /// deleted: on the writer's own SQLite connection, SQLite's running count (triggers
    /// included); through sqlx, the rows each write statement reported. A command that
    /// failed without moving it wrote nothing.
    pub fn rows_written(&self) -> u64 {
        match &self.inner {
            TxInner::Direct(t) => {
                let conn = t.conn.lock().unwrap_or_else(PoisonError::into_inner);
                conn.total_changes()
            }
            TxInner::Sqlite(_) | TxInner::Postgres(_) => self.written,
        }
    }

    /// Savepoints let one command of a batch fail without sinking the others. A write
    /// held back would land in whichever command's savepoint came next, so from the
    /// first savepoint on nothing is held.
    pub async fn savepoint(&mut self) -> Result<()> {
        self.send_held().await?;
        self.held = None;
        self.notes_ahead.clear();
        self.exec("SAVEPOINT command").await
    }
    pub async fn release(&mut self) -> Result<()> {
        self.exec("RELEASE SAVEPOINT command").await
    }
    pub async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.exec("ROLLBACK TO SAVEPOINT command").await?;
        self.exec("RELEASE SAVEPOINT command").await
    }

    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        match &mut self.inner {
            TxInner::Sqlite(t) => sqlx::raw_sql(sql).execute(&mut **t).await.map(|_| ())?,
            TxInner::Postgres(t) => sqlx::raw_sql(sql).execute(t.conn()).await.map(|_| ())?,
            TxInner::Direct(t) => t.exec(sql)?,
        }
        Ok(())
    }
}

/// A value bound to a query, typed so PostgreSQL knows what a NULL is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SqlValue {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Option<Vec<u8>>),
    /// One column of many rows, each value of this kind: a PostgreSQL array, which
    /// `unnest` turns back into rows (see [`statement::Rows`]).
    List(CellKind, Vec<SqlValue>),
}

/// How a database takes a [`SqlValue::List`].
pub(crate) trait Lists: Database {
    fn bind_list<'q>(
        query: Query<'q, Self, Self::Arguments>,
        kind: CellKind,
        values: Vec<SqlValue>,
    ) -> Query<'q, Self, Self::Arguments>;
}

impl Lists for Postgres {
    fn bind_list<'q>(
        query: Query<'q, Self, Self::Arguments>,
        kind: CellKind,
        values: Vec<SqlValue>,
    ) -> Query<'q, Self, Self::Arguments> {
        // Every value of a list comes from one call site and is of the list's kind.
        let values = values.into_iter();
        match kind {
            CellKind::Int => query.bind(
                values
                    .map(|v| if let SqlValue::Int(v) = v { v } else { None })
                    .collect::<Vec<_>>(),
            ),
            CellKind::Text => query.bind(
                values
                    .map(|v| if let SqlValue::Text(v) = v { v } else { None })
                    .collect::<Vec<_>>(),
            ),
            CellKind::Bool => query.bind(
                values
                    .map(|v| matches!(v, SqlValue::Bool(true)))
                    .collect::<Vec<_>>(),
            ),
            CellKind::Bytes => query.bind(
                values
                    .map(|v| if let SqlValue::Bytes(v) = v { v } else { None })
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

impl Lists for Sqlite {
    /// SQLite has no arrays, and its writer runs every write at once, so it is never
    /// sent a list; were it sent one, it would get NULL and its statement would fail
    /// on the missing values rather than write other ones.
    fn bind_list<'q>(
        query: Query<'q, Self, Self::Arguments>,
        _: CellKind,
        _: Vec<SqlValue>,
    ) -> Query<'q, Self, Self::Arguments> {
        query.bind(None::<String>)
    }
}

pub(crate) fn bind<'q, DB: Lists>(
    query: Query<'q, DB, DB::Arguments>,
    value: SqlValue,
) -> Query<'q, DB, DB::Arguments>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    match value {
        SqlValue::Int(v) => query.bind(v),
        SqlValue::Text(v) => query.bind(v),
        SqlValue::Bool(v) => query.bind(v),
        SqlValue::Bytes(v) => query.bind(v),
        SqlValue::List(kind, values) => DB::bind_list(query, kind, values),
    }
}

pub(crate) fn bind_all<'q, DB: Lists>(
    mut query: Query<'q, DB, DB::Arguments>,
    values: impl IntoIterator<Item = SqlValue>,
) -> Query<'q, DB, DB::Arguments>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    for v in values {
        query = bind(query, v);
    }
    query
}

/// Reads column `i` of a row of either backend as the given kind of value.
pub(crate) fn cell<'r, R>(row: &'r R, i: usize, kind: CellKind) -> Result<SqlValue>
where
    R: Row,
    usize: ColumnIndex<R>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(match kind {
        CellKind::Int => SqlValue::Int(row.try_get(i)?),
        CellKind::Text => SqlValue::Text(row.try_get(i)?),
        CellKind::Bool => SqlValue::Bool(row.try_get(i)?),
        CellKind::Bytes => SqlValue::Bytes(row.try_get(i)?),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Int,
    Text,
    Bool,
    Bytes,
}

/// The SQL for a dynamic query is assembled from our own column names only, never from
/// input; this is the one place that vouches for it.
pub(crate) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

#[cfg(test)]
mod tests {
    /// `.cargo/config.toml` compiles SQLite with a page cache per connection and no
    /// allocation count; a build that lost those flags (say, one run with its own
    /// `LIBSQLITE3_FLAGS`) would still work, only slower under concurrent connections.
    #[test]
    fn sqlite_is_built_with_a_page_cache_per_connection() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut options = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = options
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }
}
