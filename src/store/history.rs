//! A page of a record's history read in one statement: the newest of its audit entries,
//! status notes and notes revisions taken together, for `audit::history` to show.

use std::sync::LazyLock;

use super::{
    Backend, Db, Result, SqlValue,
    audit_log::{self, StoredEntry},
    notes::{Author, StatusNote},
    statement,
};
use crate::domain::{note::Change, record::RecordKind};

/// Where each source's page starts: only rows before its keyset (from the newest when
/// none).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bounds {
    /// `(ts, idx)`.
    pub entries: Option<(i64, i64)>,
    /// `(ts, id)`.
    pub status_notes: Option<(i64, i64)>,
    /// `(ts, revision)`.
    pub revisions: Option<(i64, i64)>,
}

/// Each source's rows on the page, newest first.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<StoredEntry>,
    pub status_notes: Vec<StatusNote>,
    pub revisions: Vec<RevisionChange>,
}

/// A notes revision as history shows it.
#[derive(Debug)]
pub struct RevisionChange {
    pub revision: i64,
    pub ts: i64,
    pub author: Author,
    pub shown: Shown,
}

/// What a revision brings to history: the change stored with it or, for one written
/// before changes were stored, its text and the one before it, to compare.
#[derive(Debug)]
pub enum Shown {
    Change(Change),
    Text { text: String, before: String },
}

/// The record's entries before the page's bound, newest first, with their bodies. On
/// SQLite off the record's chain (`audit_log::chain`).
static CHAIN_ENTRIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT CAST(2 AS BIGINT) AS src, c.ts AS ts, c.idx AS idx, l.entry, {ENTRY_NOT_SHOWN} \
         FROM (SELECT c.idx, c.ts FROM chain c \
           WHERE c.kept AND (c.ts < $3 OR (c.ts = $3 AND c.idx < $4)) LIMIT $9) AS c \
         JOIN audit_log l ON l.idx = c.idx"
    )
});

/// The same on PostgreSQL, off its index by record on the log (migration 0015): one
/// descent reads the page with the bodies, where its recursive walk of the chain took a
/// fifth longer per page (see PERFORMANCE.md).
static INDEXED_ENTRIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT CAST(2 AS BIGINT) AS src, l.ts AS ts, l.idx AS idx, l.entry, {ENTRY_NOT_SHOWN} \
         FROM audit_log l WHERE l.record_type = $1 AND l.record_id = $2 \
           AND (l.ts < $3 OR (l.ts = $3 AND l.idx < $4)) AND length(l.entry) > 0 \
         ORDER BY l.ts DESC, l.idx DESC LIMIT $9"
    )
});

/// Status notes before the page's bound.
const STATUS_NOTES: &str = "FROM status_notes n WHERE n.record_type = $1 AND n.record_id = $2 \
    AND (n.ts < $5 OR (n.ts = $5 AND n.id < $6))";

/// Revisions before the page's bound. They come in time order by number (the log's time
/// never runs backwards), but their index is by number, which no database can take for
/// time: each reads its page.
const REVISIONS: &str = "FROM note_revisions v WHERE v.record_type = $1 AND v.record_id = $2 \
    AND (v.ts < $7 OR (v.ts = $7 AND v.revision < $8)) ORDER BY v.revision DESC LIMIT $9";

/// What history shows of a status note and of a revision, in the columns of [`Row`]. A
/// revision's text is read only when it has no stored change, and then with the text
/// before it (numbers run without gaps) to compare with. The typed NULLs let both
/// databases match the columns.
const STATUS_NOTE_SHOWN: &str = "CAST(NULL AS BYTEA), n.actor_kind, n.actor_id, \
    n.actor_initials, CAST(NULL AS TEXT), n.body, n.audit_idx, CAST(NULL AS TEXT), \
    CAST(NULL AS TEXT)";
const REVISION_SHOWN: &str = "CAST(NULL AS BYTEA), v.author_kind, v.author_id, \
    v.author_initials, v.author_name, CASE WHEN v.change IS NULL THEN v.body END, \
    CAST(NULL AS BIGINT), v.change, \
    CASE WHEN v.change IS NULL THEN (SELECT p.body FROM note_revisions p \
      WHERE p.record_type = $1 AND p.record_id = $2 AND p.revision = v.revision - 1 \
        AND p.change IS NULL) END";
/// An entry's row has none of the other sources' columns.
const ENTRY_NOT_SHOWN: &str = "CAST(NULL AS TEXT) AS who_kind, CAST(NULL AS BIGINT) AS who_id, \
    CAST(NULL AS TEXT) AS initials, CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS body, \
    CAST(NULL AS BIGINT) AS audit_idx, CAST(NULL AS TEXT) AS change, \
    CAST(NULL AS TEXT) AS before";

/// One statement, since on PostgreSQL each read would be a round trip of its own and a
/// history page is read far more often than anything is written: the sources merged in
/// history's order (`audit::history::Item::key`). Each source's page comes off its index
/// with what it shows, bounded by the page: a planner that takes the record to have few
/// rows would otherwise sort all of them, and the revisions' lookup left to it read at
/// times every revision of the record for each one shown.
fn page_sql(with: &str, entries: &str) -> String {
    format!(
        "{with} SELECT * FROM ({entries}) AS e \
         UNION ALL SELECT * FROM (SELECT CAST(1 AS BIGINT), n.ts, n.id, {STATUS_NOTE_SHOWN} \
           {STATUS_NOTES} ORDER BY n.ts DESC, n.id DESC LIMIT $9) AS s \
         UNION ALL SELECT * FROM (SELECT CAST(0 AS BIGINT), v.ts, v.revision, \
           {REVISION_SHOWN} {REVISIONS}) AS r \
         ORDER BY ts DESC, src DESC, idx DESC LIMIT $9"
    )
}

static SQLITE: LazyLock<String> = LazyLock::new(|| {
    let with = format!("WITH RECURSIVE {}", audit_log::chain("$1", "$2"));
    page_sql(&with, &CHAIN_ENTRIES)
});
static POSTGRES: LazyLock<String> = LazyLock::new(|| page_sql("", &INDEXED_ENTRIES));

type Row = (
    i64,
    i64,
    i64,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The record's newest `limit` entries, status notes and revisions taken together, after
/// each source's bound.
pub async fn page(db: &Db, kind: RecordKind, id: i64, bounds: Bounds, limit: i64) -> Result<Page> {
    let from = |b: Option<(i64, i64)>| b.unwrap_or((i64::MAX, i64::MAX));
    let (e, s, r) = (
        from(bounds.entries),
        from(bounds.status_notes),
        from(bounds.revisions),
    );
    let mut conn = db.reader().await?;
    let sql = match db.backend() {
        Backend::Sqlite => SQLITE.as_str(),
        Backend::Postgres => POSTGRES.as_str(),
    };
    let rows: Vec<Row> = statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .bind_all([e.0, e.1, s.0, s.1, r.0, r.1, limit].map(SqlValue::from))
        .fetch_all(conn.run())
        .await?;
    let mut page = Page::default();
    for row in rows {
        let (src, ts, key, bytes, who_kind, who_id, initials, name, body, audit_idx, change, old) =
            row;
        let missing = |what: &str| super::Error::Corrupt(format!("a history row has no {what}"));
        match src {
            2 => page.entries.push(StoredEntry {
                idx: key,
                ts,
                bytes: bytes.ok_or_else(|| missing("entry"))?,
            }),
            1 => page.status_notes.push(StatusNote {
                id: key,
                ts,
                actor_kind: who_kind.ok_or_else(|| missing("actor"))?,
                actor_id: who_id,
                initials: initials.ok_or_else(|| missing("initials"))?,
                text: body.ok_or_else(|| missing("text"))?,
                audit_idx,
            }),
            _ => page.revisions.push(RevisionChange {
                revision: key,
                ts,
                author: Author {
                    kind: who_kind.ok_or_else(|| missing("author"))?,
                    id: who_id,
                    initials: initials.ok_or_else(|| missing("initials"))?,
                    name: name.ok_or_else(|| missing("author name"))?,
                },
                shown: match change {
                    Some(json) => Shown::Change(serde_json::from_str(&json).map_err(|e| {
                        super::Error::Corrupt(format!("revision {key}'s change: {e}"))
                    })?),
                    None => Shown::Text {
                        text: body.ok_or_else(|| missing("text"))?,
                        before: before(key, old)?,
                    },
                },
            }),
        }
    }
    Ok(page)
}

/// The text of the revision before `revision`, which was written without a stored change,
/// as was every revision before it.
fn before(revision: i64, text: Option<String>) -> Result<String> {
    match text {
        Some(text) => Ok(text),
        None if revision == 1 => Ok(String::new()),
        None => Err(super::Error::Corrupt(format!(
            "revision {revision} has no stored change, but {} is missing or has one",
            revision - 1
        ))),
    }
}
