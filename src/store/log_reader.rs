//! Reading the whole audit log, page by page, for `audit verify`: each stored entry is
//! handed over borrowed, on a blocking thread, so that checking it costs no copy and no
//! hop between threads.
//!
//! On SQLite the pages are read through read-only connections of their own (rusqlite)
//! rather than the pool's: sqlx hands every row from the connection's thread to the
//! reader's, which for a million small rows costs several times the read itself. These
//! connections cannot write (SQLITE_OPEN_READ_ONLY), so the ledger stays the only writer.
//! PostgreSQL (and an in-memory SQLite database, which another connection cannot see)
//! is read through the pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{OpenFlags, types::ValueRef};

use super::audit_log::{self, Node, Row};
use super::{Db, Error, Result};

/// One stored entry as read: its columns and bytes exactly as they are, whatever they are.
#[derive(Clone, Copy, Debug)]
pub struct RowRef<'a> {
    pub idx: i64,
    pub ts: i64,
    pub category: &'a str,
    pub action: &'a str,
    pub actor_kind: &'a str,
    pub actor_id: Option<i64>,
    pub record_type: Option<&'a str>,
    pub record_id: Option<i64>,
    pub bytes: &'a [u8],
    pub leaf_hash: &'a [u8],
    pub prev_idx: Option<i64>,
}

impl Row {
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            idx: self.idx,
            ts: self.ts,
            category: &self.category,
            action: &self.action,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id,
            record_type: self.record_type.as_deref(),
            record_id: self.record_id,
            bytes: &self.bytes,
            leaf_hash: &self.leaf_hash,
            prev_idx: self.prev_idx,
        }
    }
}

/// What a column holds when its type is not the one the schema gives it (only a write
/// outside the ledger can do that): a value no entry says, so the column shows as edited.
const NOT_TEXT: &str = "\u{0}(not text)";
const NOT_INTEGER: i64 = i64::MIN;

/// How much of the file a reading connection maps (SQLite caps it at its compile-time
/// maximum; a larger file is read past the map as usual).
const MMAP_SIZE: i64 = 1 << 40;

/// Reads the log of one database in pages; cheap to clone.
#[derive(Clone)]
pub struct LogReader {
    db: Db,
    sqlite: Option<Arc<Connections>>,
}

/// Read-only connections to one SQLite file, kept between pages.
struct Connections {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl LogReader {
    pub fn new(db: &Db) -> Self {
        let sqlite = match db {
            Db::Sqlite(pool, _) => {
                let path = pool.connect_options().get_filename().to_owned();
                let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
                (!in_memory).then(|| {
                    Arc::new(Connections {
                        path,
                        idle: Mutex::new(Vec::new()),
                    })
                })
            }
            Db::Postgres(_) => None,
        };
        Self {
            db: db.clone(),
            sqlite,
        }
    }

    /// The entries from `from_idx` up to `to_idx` (at most `limit`) in index order, each
    /// handed to `each` as read, and the stored tree nodes that they, or the entry after
    /// them, complete (as [`audit_log::nodes_in_range`]).
    pub async fn page<T, F>(
        &self,
        from_idx: i64,
        to_idx: i64,
        limit: i64,
        each: F,
    ) -> Result<(Vec<T>, Vec<Node>)>
    where
        T: Send + 'static,
        F: FnMut(RowRef<'_>) -> T + Send + 'static,
    {
        if let Some(sqlite) = &self.sqlite {
            let sqlite = sqlite.clone();
            return tokio::task::spawn_blocking(move || sqlite.page(from_idx, to_idx, limit, each))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        }
        let rows = audit_log::rows(&self.db, from_idx, to_idx, limit).await?;
        let nodes = match rows.last() {
            Some(last) => {
                let first = u64::try_from(from_idx).unwrap_or(0);
                let end = u64::try_from(last.idx).unwrap_or(0) + 2;
                audit_log::nodes_in_range(&self.db, first, end.max(first)).await?
            }
            None => Vec::new(),
        };
        let mut each = each;
        let mapped = tokio::task::spawn_blocking(move || {
            rows.iter().map(|r| each(r.as_ref())).collect::<Vec<T>>()
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Ok((mapped, nodes))
    }
}

impl Connections {
    fn page<T>(
        &self,
        from_idx: i64,
        to_idx: i64,
        limit: i64,
        mut each: impl FnMut(RowRef<'_>) -> T,
    ) -> Result<(Vec<T>, Vec<Node>)> {
        let conn = self.take()?;
        let read = (|| {
            let mut out = Vec::new();
            let mut last = None;
            let mut stmt = conn.prepare(
                "SELECT idx, ts, category, action, actor_kind, actor_id, record_type, \
                 record_id, entry, leaf_hash, prev_idx FROM audit_log \
                 WHERE idx >= ?1 AND idx < ?2 ORDER BY idx LIMIT ?3",
            )?;
            let mut rows = stmt.query((from_idx, to_idx, limit))?;
            while let Some(r) = rows.next()? {
                let row = RowRef {
                    idx: integer(r.get_ref(0)?),
                    ts: integer(r.get_ref(1)?),
                    category: text(r.get_ref(2)?),
                    action: text(r.get_ref(3)?),
                    actor_kind: text(r.get_ref(4)?),
                    actor_id: optional_integer(r.get_ref(5)?),
                    record_type: optional_text(r.get_ref(6)?),
                    record_id: optional_integer(r.get_ref(7)?),
                    bytes: bytes(r.get_ref(8)?),
                    leaf_hash: bytes(r.get_ref(9)?),
                    prev_idx: optional_integer(r.get_ref(10)?),
                };
                last = Some(row.idx);
                out.push(each(row));
            }
            let nodes = match last {
                Some(last) => {
                    let first = u64::try_from(from_idx).unwrap_or(0);
                    let end = u64::try_from(last).unwrap_or(0) + 2;
                    nodes(&conn, first, end.max(first))?
                }
                None => Vec::new(),
            };
            Ok::<_, Error>((out, nodes))
        })()?;
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
        Ok(read)
    }

    fn take(&self) -> Result<rusqlite::Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let open = || {
            let conn = rusqlite::Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(10))?;
            // Pages mapped rather than copied in by a read() each: the scan reads the
            // whole file, most of it already in the OS's cache.
            conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
            Ok::<_, rusqlite::Error>(conn)
        };
        Ok(open()?)
    }
}

/// The stored nodes completed by the leaves `[from, to)`: one range of the tree's key.
fn nodes(conn: &rusqlite::Connection, from: u64, to: u64) -> Result<Vec<Node>> {
    let mut stmt = conn.prepare(audit_log::NODES_IN_RANGE)?;
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut rows = stmt.query((as_i64(from), as_i64(to)))?;
    let mut nodes = Vec::new();
    while let Some(r) = rows.next()? {
        let (leaf, level) = (integer(r.get_ref(0)?), integer(r.get_ref(1)?));
        nodes.push(audit_log::node_at(
            leaf,
            level,
            bytes(r.get_ref(2)?).to_vec(),
        )?);
    }
    Ok(nodes)
}

fn integer(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        _ => NOT_INTEGER,
    }
}

fn optional_integer(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Null => None,
        v => Some(integer(v)),
    }
}

fn text(v: ValueRef<'_>) -> &str {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(NOT_TEXT),
        _ => NOT_TEXT,
    }
}

fn optional_text(v: ValueRef<'_>) -> Option<&str> {
    match v {
        ValueRef::Null => None,
        v => Some(text(v)),
    }
}

/// An entry's body or hash as stored; `CAST(... AS BLOB)` in SQL terms.
fn bytes(v: ValueRef<'_>) -> &[u8] {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        _ => &[],
    }
}
