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

/// One statement, since on PostgreSQL each read would be a round trip of its own and a
/// history page is read far more often than anything is written. First the keys of the
/// page: the sources merged in history's order (`audit::history::Item::key`). Then what
/// is shown, for those rows only. A revision's text is read only when it has no stored
/// change, and then with the text before it (numbers run without gaps) to compare with.
/// The typed NULLs let both databases match the columns.
fn sql(backend: Backend) -> String {
    let mut clauses = vec![
        "{t}record_type = $1".to_owned(),
        "{t}record_id = $2".to_owned(),
        "({t}ts < $3 OR ({t}ts = $3 AND {t}idx < $4))".to_owned(),
    ];
    let columns = "CAST(2 AS BIGINT) AS src, {t}ts AS ts, {t}idx AS idx";
    let [indexed, tail] = audit_log::parts(
        &[clauses.clone(), vec!["length(l.entry) > 0".to_owned()]].concat(),
        columns,
    );
    // The entries a page shows are looked up once, for their bodies: on PostgreSQL the
    // keys alone say which are not archived, where looking each up twice cost a fifth of
    // the statement.
    clauses.push(audit_log::UNARCHIVED.to_owned());
    let keys_only = audit_log::keys_only(&clauses, columns);
    let bounded = |select: &str, order: &str, name: &str| {
        format!("SELECT * FROM ({select} ORDER BY {order} LIMIT $9) AS {name}")
    };
    let status_notes = "SELECT CAST(1 AS BIGINT), ts, id FROM status_notes \
        WHERE record_type = $1 AND record_id = $2 AND (ts < $5 OR (ts = $5 AND id < $6))";
    // Revisions come in time order by number (the log's time never runs backwards), but
    // their index is by number, which no database can take for time: each reads its page.
    let revisions = bounded(
        "SELECT CAST(0 AS BIGINT), ts, revision FROM note_revisions \
         WHERE record_type = $1 AND record_id = $2 AND (ts < $7 OR (ts = $7 AND revision < $8))",
        "revision DESC",
        "r",
    );
    let keys = match backend {
        // SQLite merges the other sources as they come off their indexes, in time order,
        // and stops reading each where the page is full; an order and a limit of their
        // own would have it read and sort a page of each first.
        Backend::Sqlite => [
            indexed.select,
            tail.select,
            status_notes.to_owned(),
            revisions,
        ],
        // PostgreSQL's planner would sort all of a record's rows rather than merge them
        // when it takes the record to have few, so each source is bounded by the page.
        Backend::Postgres => [
            bounded(&keys_only.select, keys_only.newest_first, "k"),
            bounded(&tail.select, tail.newest_first, "t"),
            bounded(status_notes, "ts DESC, id DESC", "s"),
            revisions,
        ],
    }
    .join(" UNION ALL ");
    format!(
        "WITH shown AS ({keys} ORDER BY ts DESC, src DESC, idx DESC LIMIT $9) \
SELECT shown.src, shown.ts, shown.idx, l.entry, CAST(NULL AS TEXT) AS who_kind, \
    CAST(NULL AS BIGINT) AS who_id, CAST(NULL AS TEXT) AS initials, \
    CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS body, \
    CAST(NULL AS BIGINT) AS audit_idx, CAST(NULL AS TEXT) AS change, \
    CAST(NULL AS TEXT) AS before \
  FROM shown JOIN audit_log l ON l.idx = shown.idx WHERE shown.src = 2 \
UNION ALL SELECT shown.src, shown.ts, shown.idx, CAST(NULL AS BYTEA), n.actor_kind, \
    n.actor_id, n.actor_initials, CAST(NULL AS TEXT), n.body, n.audit_idx, \
    CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
  FROM shown JOIN status_notes n ON n.id = shown.idx WHERE shown.src = 1 \
UNION ALL SELECT shown.src, shown.ts, shown.idx, CAST(NULL AS BYTEA), v.author_kind, \
    v.author_id, v.author_initials, v.author_name, \
    CASE WHEN v.change IS NULL THEN v.body END, CAST(NULL AS BIGINT), v.change, \
    CASE WHEN v.change IS NULL THEN (SELECT p.body FROM note_revisions p \
      WHERE p.record_type = $1 AND p.record_id = $2 AND p.revision = v.revision - 1 \
        AND p.change IS NULL) END \
  FROM shown JOIN note_revisions v ON v.record_type = $1 AND v.record_id = $2 \
    AND v.revision = shown.idx \
  WHERE shown.src = 0",
    )
}

static SQLITE: LazyLock<String> = LazyLock::new(|| sql(Backend::Sqlite));
static POSTGRES: LazyLock<String> = LazyLock::new(|| sql(Backend::Postgres));

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
