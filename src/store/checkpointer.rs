//! Copies the writer's WAL into the SQLite database file on a thread of its own.
//!
//! SQLite's automatic checkpoint runs inside whichever COMMIT crosses 1000 WAL pages:
//! that commit, and every command waiting on it, also waits for the pages to be copied
//! and the database file synced. The writer's connection turns that off, and this thread
//! runs the same passive checkpoint a moment later instead, on a connection of its own.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use super::Result;

/// How often the thread looks for commits to copy.
const PERIOD: Duration = Duration::from_millis(100);

/// The running thread; it stops when this is dropped.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
}

struct Shared {
    /// A commit since the last checkpoint.
    dirty: AtomicBool,
    stop: AtomicBool,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Self> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // The checkpoint syncs the database file as the writer's commits sync the WAL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let shared = Arc::new(Shared {
            dirty: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        thread::Builder::new()
            .name("keeptrack-checkpoint".into())
            .spawn(move || {
                while !theirs.stop.load(Ordering::Relaxed) {
                    thread::sleep(PERIOD);
                    if theirs.dirty.swap(false, Ordering::Relaxed) {
                        // PASSIVE never blocks the writer or a reader; what it cannot copy
                        // now (a reader still needs it) it copies next time.
                        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                        if let Err(e) = done {
                            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                            theirs.dirty.store(true, Ordering::Relaxed);
                        }
                    }
                }
            })
            .map_err(|_| super::Error::Unsupported("cannot start the WAL checkpoint thread"))?;
        Ok(Self { shared })
    }

    /// The writer committed: there are pages to copy.
    pub(super) fn committed(&self) {
        self.shared.dirty.store(true, Ordering::Relaxed);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
