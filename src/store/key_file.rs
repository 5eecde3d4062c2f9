//! The file beside an SQLite database that holds the audit log's query keys
//! (`audit_keys`, attached to every connection as `keys`), and the thread that copies
//! them there.
//!
//! In the database's own file the keys rode a batch's commit every few hundred entries,
//! and the copy of each entry's key by record landed on a page of its own (entries name
//! records at random): about a page more per audited write, flushed under
//! `synchronous=FULL`, most of what auditing cost a write and all of its p99. Here they are
//! copied after the commit, on a thread of their own, under `synchronous=NORMAL`: the
//! keys are copies of the log's own columns, so keys a power cut loses are copied again
//! from the log, which never loses an entry. Queries still see every committed entry: what
//! is not keyed yet is the log's tail, which they scan (see `audit_log::parts`).
//!
//! Backups copy the database alone; the keys are made again beside a restored copy.

use std::{
    path::Path,
    sync::mpsc::{Receiver, SyncSender, sync_channel},
};

use super::Result;

/// Attaches the keys' file of the database at `main` as `keys` to a connection through
/// sqlx, where SQL that names `audit_keys` finds it: the pool's connections, and anything
/// else that reads the keys beside the server (the HTTP bench's own limit).
pub async fn attach(conn: &mut sqlx::SqliteConnection, main: &Path) -> sqlx::Result<()> {
    sqlx::query("ATTACH DATABASE $1 AS keys")
        .bind(location(main))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The same, read-only, on a connection the store calls directly (the writer's, the
/// readers'); read-only also keeps the writer's `BEGIN IMMEDIATE` from locking it.
pub(super) fn attach_read_only(conn: &rusqlite::Connection, main: &Path) -> Result<()> {
    conn.execute("ATTACH DATABASE ?1 AS keys", [read_only(&location(main))])?;
    Ok(())
}

/// The keys' file of the database at `main` (a path, or sqlx's name of an in-memory
/// database) as `ATTACH` takes it: beside it, or in memory beside it.
fn location(main: &Path) -> String {
    let name = main.to_string_lossy();
    if name.starts_with("file:") {
        // sqlx opens every in-memory database as a shared-cache URI; the keys share it.
        format!("{name}-keys?mode=memory&cache=shared")
    } else {
        format!("{name}-keys")
    }
}

/// The file at `path` as a URI that opens it read-only: the connection cannot write
/// it, and its `BEGIN IMMEDIATE` does not lock it, though others may change it.
fn read_only(path: &str) -> String {
    let escaped = path
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23");
    format!("file:{escaped}?mode=ro")
}

/// The keys' table, their indexes and their guard, created where missing. The same as
/// the database's own file held them until migration 14, but for the index by record:
/// history walks a record's chain in the log instead (migration 15), and searches by
/// kind of record alone have an index that grows at its end.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys.audit_keys (
    idx INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id BIGINT,
    record_type TEXT,
    record_id BIGINT
);
CREATE INDEX IF NOT EXISTS keys.audit_keys_ts ON audit_keys (ts);
CREATE INDEX IF NOT EXISTS keys.audit_keys_actor ON audit_keys (actor_id, ts);
CREATE INDEX IF NOT EXISTS keys.audit_keys_category ON audit_keys (category, ts);
CREATE INDEX IF NOT EXISTS keys.audit_keys_action ON audit_keys (action, ts);
CREATE INDEX IF NOT EXISTS keys.audit_keys_record_type ON audit_keys (record_type, ts);
DROP INDEX IF EXISTS keys.audit_keys_record;
CREATE TRIGGER IF NOT EXISTS keys.audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
CREATE TRIGGER IF NOT EXISTS keys.audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
";

/// Creates the keys' file and what it holds where missing, on a pool connection (which
/// has it attached).
pub(super) async fn prepare(pool: &sqlx::SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA keys.journal_mode = WAL")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
    Ok(())
}

/// Starts the keys again from none when they are not this log's: a key past the log's
/// end, or a newest key that is not a copy of its entry, is what a database restored
/// from a backup beside a newer file of keys looks like. Any other difference is
/// `audit verify`'s to report.
pub(super) async fn settle(pool: &sqlx::SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let foreign: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM keys.audit_keys k \
           WHERE k.idx = (SELECT MAX(idx) FROM keys.audit_keys) AND NOT EXISTS ( \
             SELECT 1 FROM main.audit_log l WHERE l.idx = k.idx AND l.ts = k.ts \
               AND l.category = k.category AND l.action = k.action \
               AND l.actor_id IS k.actor_id AND l.record_type IS k.record_type \
               AND l.record_id IS k.record_id))",
    )
    .fetch_one(&mut *conn)
    .await?;
    if foreign {
        tracing::warn!(
            "the audit log's query keys belong to another copy of it; making them again"
        );
        sqlx::query("DROP TABLE keys.audit_keys")
            .execute(&mut *conn)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Keys copied per transaction, so that a first copy of a large log (after an upgrade,
/// a restore) does not hold a transaction open for long.
const CHUNK: i64 = 50_000;

/// The next `?1` keys not copied yet, in index order.
const COPY: &str = "INSERT INTO audit_keys (idx, ts, category, action, actor_id, record_type, \
    record_id) SELECT idx, ts, category, action, actor_id, record_type, record_id \
    FROM log.audit_log WHERE idx > (SELECT COALESCE(MAX(idx), -1) FROM audit_keys) \
    ORDER BY idx LIMIT ?1";

/// The thread that copies the keys of the entries committed since its last copy. It
/// writes nothing but the keys' file, which it opens as its main database with the log's
/// attached read-only, so its transactions never take the log's lock.
pub(super) struct Copier {
    wake: SyncSender<()>,
}

impl Copier {
    /// Starts the thread for the database at `main`; it copies what is waiting at once
    /// (say after an upgrade), then whenever woken. It ends with the last `Copier`.
    pub(super) fn start(main: &Path) -> Result<Self> {
        let conn = super::open_direct(Path::new(&location(main)))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute(
            "ATTACH DATABASE ?1 AS log",
            [read_only(&main.to_string_lossy())],
        )?;
        let (wake, woken) = sync_channel(1);
        std::thread::Builder::new()
            .name("keeptrack-keys".into())
            .spawn(move || copy_when_woken(&conn, &woken))
            .map_err(super::Error::Copier)?;
        Ok(Self { wake })
    }

    /// Asks for a copy; one already asked for and not begun covers this one too.
    pub(super) fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

fn copy_when_woken(conn: &rusqlite::Connection, woken: &Receiver<()>) {
    loop {
        if let Err(e) = copy(conn) {
            tracing::warn!(error = %e, "the audit log's keys were not copied; the next copy will");
        }
        // Wakes that came during a copy wait as one, for one more pass.
        if woken.recv().is_err() {
            return;
        }
    }
}

/// Copies the keys of every committed entry not keyed yet, in index order.
fn copy(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(COPY)?;
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let copied = insert.execute([CHUNK]);
        match copied {
            Ok(n) => {
                conn.execute_batch("COMMIT")?;
                if i64::try_from(n).unwrap_or(i64::MAX) < CHUNK {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}
