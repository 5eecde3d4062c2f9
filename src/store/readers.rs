//! The SQLite connections that short reads (a record, a token, a page of history or of
//! the log) run on, called directly on the thread that asks.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to
//! it and back. A request of a few indexed lookups spent more on those hand-overs
//! (about ten context switches per statement) than in SQLite. These connections are
//! `query_only`: nothing reaches the database through them but reads. Long reads
//! (verify, export, archive) stay on the pool, where they do not hold up a request
//! thread.

use std::{
    fmt,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use super::Result;

/// How much of the file each reader maps: all of it, up to SQLite's compile-time cap. The
/// mapping is shared with the page cache, and what lies past it is read a page at a
/// time, which is where the newest rows are, the ones history reads.
const MMAP_BYTES: i64 = 1 << 40;

/// Direct read connections to one SQLite file (none for an in-memory database).
#[derive(Clone, Default)]
pub struct Readers {
    conns: Arc<[Mutex<rusqlite::Connection>]>,
    next: Arc<AtomicUsize>,
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Readers({})", self.conns.len())
    }
}

impl Readers {
    /// `count` read-only connections to the file at `path`.
    pub(super) fn open(path: &Path, count: usize) -> Result<Self> {
        let conns = (0..count)
            .map(|_| {
                let conn = super::open_direct(path)?;
                conn.pragma_update(None, "query_only", "ON")?;
                super::key_file::attach_read_only(&conn, path)?;
                // Pages read from the map, not copied in by a read() each: a page of the
                // log touches ~50 rows scattered through a large file.
                conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
                conn.pragma_update(Some("keys"), "mmap_size", MMAP_BYTES)?;
                conn.set_prepared_statement_cache_capacity(128);
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A connection to read on, taken in turn; none when there are no direct connections.
    /// Each statement locks it only while it runs, so two callers that get the same one
    /// wait for each other at most one statement.
    pub(super) fn pick(&self) -> Option<&Mutex<rusqlite::Connection>> {
        if self.conns.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns.get(n % self.conns.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Db, statement};

    #[tokio::test]
    async fn reads_see_commits_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let db = Db::open(&url).await.unwrap();
        let Db::Sqlite(pool, readers) = &db else {
            unreachable!()
        };
        assert_eq!(readers.conns.len(), super::super::READERS);
        sqlx::query("UPDATE log_head SET size = 7 WHERE id = 1")
            .execute(pool)
            .await
            .unwrap();
        for _ in 0..readers.conns.len() {
            let mut reader = db.reader().await.unwrap();
            let size: i64 = statement("SELECT size FROM log_head WHERE id = 1")
                .scalar(reader.run())
                .await
                .unwrap();
            assert_eq!(size, 7);
            let write = statement("UPDATE log_head SET size = 8 WHERE id = 1")
                .execute(reader.run())
                .await;
            assert!(write.is_err(), "a reader wrote");
        }
    }

    #[tokio::test]
    async fn an_in_memory_database_reads_on_the_pool() {
        let db = Db::open("sqlite::memory:").await.unwrap();
        assert!(matches!(
            db.reader().await.unwrap(),
            super::super::Reader::Pooled(_)
        ));
    }
}
