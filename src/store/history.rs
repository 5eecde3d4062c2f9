//! A page of a record's history read in one statement: its audit entries, status notes
//! and notes revisions, each source newest first, for `audit::history` to merge.

use std::sync::LazyLock;

use super::{
    Db, Result, SqlValue,
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

/// Each source's rows, newest first.
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
/// before changes were stored, its text, to compare with the one before.
#[derive(Debug)]
pub enum Shown {
    Change(Change),
    Text(String),
}

/// The three reads as one statement: on PostgreSQL each would be a round trip of its own,
/// and a history page is read far more often than anything is written. Every source keeps
/// its own index and its own limit; the typed NULLs let both databases match the columns.
/// A revision's text is read only when it has no stored change.
static SQL: LazyLock<String> = LazyLock::new(|| {
    let entries = audit_log::newest_first(
        &[
            "{t}record_type = $1".to_owned(),
            "{t}record_id = $2".to_owned(),
            "({t}ts < $3 OR ({t}ts = $3 AND {t}idx < $4))".to_owned(),
            "length(l.entry) > 0".to_owned(),
        ],
        "$9",
        "CAST(2 AS BIGINT) AS src, l.ts AS ts, l.idx AS idx, l.entry AS entry, \
         CAST(NULL AS TEXT) AS who_kind, CAST(NULL AS BIGINT) AS who_id, \
         CAST(NULL AS TEXT) AS initials, CAST(NULL AS TEXT) AS name, \
         CAST(NULL AS TEXT) AS body, CAST(NULL AS BIGINT) AS audit_idx, \
         CAST(NULL AS TEXT) AS change",
    );
    format!(
        "SELECT * FROM ({entries}) AS e \
UNION ALL SELECT * FROM (SELECT CAST(1 AS BIGINT), ts, id, CAST(NULL AS BYTEA), actor_kind, \
    actor_id, actor_initials, CAST(NULL AS TEXT), body, audit_idx, CAST(NULL AS TEXT) \
  FROM status_notes WHERE record_type = $1 AND record_id = $2 \
    AND (ts < $5 OR (ts = $5 AND id < $6)) \
  ORDER BY ts DESC, id DESC LIMIT $9) AS s \
UNION ALL SELECT * FROM (SELECT CAST(0 AS BIGINT), ts, revision, CAST(NULL AS BYTEA), \
    author_kind, author_id, author_initials, author_name, \
    CASE WHEN change IS NULL THEN body END, CAST(NULL AS BIGINT), change \
  FROM note_revisions WHERE record_type = $1 AND record_id = $2 \
    AND (ts < $7 OR (ts = $7 AND revision < $8)) \
  ORDER BY revision DESC LIMIT $10) AS r"
    )
});

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
);

/// At most `limit` entries and status notes and `revisions_limit` revisions of the
/// record, each after its bound.
pub async fn page(
    db: &Db,
    kind: RecordKind,
    id: i64,
    bounds: Bounds,
    limit: i64,
    revisions_limit: i64,
) -> Result<Page> {
    let from = |b: Option<(i64, i64)>| b.unwrap_or((i64::MAX, i64::MAX));
    let (e, s, r) = (
        from(bounds.entries),
        from(bounds.status_notes),
        from(bounds.revisions),
    );
    let mut conn = db.reader().await?;
    let rows: Vec<Row> = statement(SQL.as_str())
        .bind(kind.as_str())
        .bind(id)
        .bind_all([e.0, e.1, s.0, s.1, r.0, r.1, limit, revisions_limit].map(SqlValue::from))
        .fetch_all(conn.run())
        .await?;
    let mut page = Page::default();
    for (src, ts, key, bytes, who_kind, who_id, initials, name, body, audit_idx, change) in rows {
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
                    None => Shown::Text(body.ok_or_else(|| missing("text"))?),
                },
            }),
        }
    }
    Ok(page)
}
