//! The Notes tab's revisions and the status notes, both append-only.

use serde::Serialize;

use super::{
    CellKind, Db, Result, Run, Shape, SqlValue, Statement, WriteTx, statement, statement::FromCells,
};
use crate::domain::{
    note::{self, Change},
    record::RecordKind,
};

/// Who wrote a revision or caused a status note, as they were then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Author {
    pub kind: String,
    pub id: Option<i64>,
    pub initials: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub revision: i64,
    /// Microseconds since the epoch, UTC.
    pub ts: i64,
    pub author: Author,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusNote {
    pub id: i64,
    pub ts: i64,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub initials: String,
    /// The whole line, stamp included.
    pub text: String,
    /// The audit entry of the change that caused it, when that change was logged.
    pub audit_idx: Option<i64>,
}

type RevisionRow = (i64, i64, String, Option<i64>, String, String, String);

fn revision((revision, ts, kind, id, initials, name, text): RevisionRow) -> Revision {
    Revision {
        revision,
        ts,
        author: Author {
            kind,
            id,
            initials,
            name,
        },
        text,
    }
}

const REVISIONS: &str = "SELECT revision, ts, author_kind, author_id, author_initials, author_name, body \
                         FROM note_revisions WHERE record_type = $1 AND record_id = $2";

async fn latest_in(run: Run<'_>, kind: RecordKind, id: i64) -> Result<Option<Revision>> {
    let sql = format!("{REVISIONS} ORDER BY revision DESC LIMIT 1");
    let row: Option<RevisionRow> = statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(run)
        .await?;
    Ok(row.map(revision))
}

/// The current notes of a record: its newest revision.
pub async fn latest(db: &Db, kind: RecordKind, id: i64) -> Result<Option<Revision>> {
    let mut conn = db.reader().await?;
    latest_in(conn.run(), kind, id).await
}

pub async fn latest_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
) -> Result<Option<Revision>> {
    if let Some(latest) = tx.notes_ahead.get(&(kind, id)).filter(|_| tx.holds()) {
        return Ok(latest.clone());
    }
    latest_in(tx.run(), kind, id).await
}

/// The columns of a revision as [`revision`] reads them, after `alias.`.
pub(crate) fn revision_columns(alias: &str) -> String {
    [
        "revision",
        "ts",
        "author_kind",
        "author_id",
        "author_initials",
        "author_name",
        "body",
    ]
    .map(|c| format!("{alias}.{c}"))
    .join(", ")
}

/// The cells of [`revision_columns`].
pub(crate) const REVISION_KINDS: [CellKind; 7] = [
    CellKind::Int,
    CellKind::Int,
    CellKind::Text,
    CellKind::Int,
    CellKind::Text,
    CellKind::Text,
    CellKind::Text,
];

/// A revision from the cells of [`revision_columns`], none where the revision is NULL
/// (a record whose notes were never written).
pub(crate) fn revision_from_cells(cells: Vec<SqlValue>) -> Result<Option<Revision>> {
    if cells.first() == Some(&SqlValue::Int(None)) {
        return Ok(None);
    }
    <RevisionRow as FromCells>::from_cells(cells).map(|row| Some(revision(row)))
}

/// One revision of a record's notes, for answering a retried addition.
pub async fn revision_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    number: i64,
) -> Result<Option<Revision>> {
    let sql = format!("{REVISIONS} AND revision = $3");
    let row: Option<RevisionRow> = statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .bind(number)
        .fetch_optional(tx.run())
        .await?;
    Ok(row.map(revision))
}

/// Revisions newest first, before the keyset `(ts, revision)`, at most `limit`.
pub async fn revisions(
    db: &Db,
    kind: RecordKind,
    id: i64,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<Revision>> {
    let sql = format!(
        "{REVISIONS} AND (ts < $3 OR (ts = $3 AND revision < $4)) \
         ORDER BY revision DESC LIMIT $5"
    );
    let mut conn = db.reader().await?;
    let rows: Vec<RevisionRow> = page(sql, kind, id, before, limit)
        .fetch_all(conn.run())
        .await?;
    Ok(rows.into_iter().map(revision).collect())
}

/// A record's page, newest first: `$1`, `$2` the record, `$3`, `$4` the keyset to start
/// before (from the newest when none), `$5` the page size.
fn page(
    sql: impl Into<std::borrow::Cow<'static, str>>,
    kind: RecordKind,
    id: i64,
    before: Option<(i64, i64)>,
    limit: i64,
) -> super::statement::Statement {
    let (ts, tiebreak) = before.unwrap_or((i64::MAX, i64::MAX));
    statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .bind(ts)
        .bind(tiebreak)
        .bind(limit)
}

/// The start of every statement that writes revisions: their columns, in one order.
macro_rules! insert_revisions {
    () => {
        "INSERT INTO note_revisions (record_type, record_id, revision, ts, author_kind, \
         author_id, author_initials, author_name, change, body) "
    };
}

/// Writes a revision with what it removed and added since the one before. Nobody reads
/// it back: on PostgreSQL it goes with the transaction's next statement, as one row of a
/// write of many records' revisions (see [`WriteTx::hold_row`]).
pub async fn insert_revision(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    r: &Revision,
    change: &Change,
) -> Result<()> {
    let mut row = vec![
        SqlValue::from(kind.as_str()),
        SqlValue::from(id),
        SqlValue::from(r.revision),
        SqlValue::from(r.ts),
    ];
    row.extend(author_cells(&r.author));
    row.extend([
        SqlValue::from(change_json(change)),
        SqlValue::from(r.text.as_str()),
    ]);
    if tx.holds() {
        const INSERT: &str = concat!(
            insert_revisions!(),
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], \
             $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[])"
        );
        let shape = Shape {
            sql: INSERT.into(),
            table: "note_revisions",
        };
        tx.hold_row(shape, (kind.as_str(), id), row).await?;
    } else {
        let sql = concat!(
            insert_revisions!(),
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        statement(sql).bind_all(row).execute(tx.run()).await?;
    }
    if let Some(latest) = tx.notes_ahead.get_mut(&(kind, id)) {
        *latest = Some(r.clone());
    }
    Ok(())
}

/// The next revision of notes read ahead (see [`latest_for_write`]), with `line`
/// appended, written as [`insert_revision`] writes one: nothing need be read.
async fn append_to_known(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    ts: i64,
    author: &Author,
    line: &str,
) -> Result<Option<(i64, String)>> {
    let Some(latest) = tx.notes_ahead.get(&(kind, id)).filter(|_| tx.holds()) else {
        return Ok(None);
    };
    let (revision, text) = match latest {
        Some(r) => (r.revision + 1, note::append_line(&r.text, line)),
        None => (1, line.to_owned()),
    };
    let r = Revision {
        revision,
        ts,
        author: author.clone(),
        text,
    };
    insert_revision(tx, kind, id, &r, &Change::appended(line)).await?;
    Ok(Some((r.revision, r.text)))
}

/// The statement that appends a line to a record's notes as a new revision: the latest
/// revision is read and the next written together, which on PostgreSQL saves a round
/// trip for every change whose reason is stamped into the notes. The text follows
/// [`crate::domain::note::append_line`]: the line alone on empty notes, else on a line of
/// its own, so its change is [`Change::appended`]. `$tail` ends it.
macro_rules! append_line_sql {
    ($tail:literal) => {
        concat!(
            insert_revisions!(),
            "SELECT $1, $2, COALESCE(l.revision, 0) + 1, $3, $4, $5, $6, $7, $10, \
             CASE WHEN l.body IS NULL OR l.body = '' THEN $8 \
             WHEN substr(l.body, length(l.body), 1) = $9 THEN l.body || $8 \
             ELSE l.body || $9 || $8 END \
             FROM (SELECT 1 AS one) AS o LEFT JOIN \
             (SELECT revision, body FROM note_revisions WHERE record_type = $1 AND record_id = $2 \
             ORDER BY revision DESC LIMIT 1) AS l ON 1 = 1",
            $tail
        )
    };
}

fn appending(
    sql: &'static str,
    kind: RecordKind,
    id: i64,
    ts: i64,
    author: &Author,
    line: &str,
) -> Statement {
    statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .bind(ts)
        .bind(author.kind.as_str())
        .bind(author.id)
        .bind(author.initials.as_str())
        .bind(author.name.as_str())
        .bind(line)
        .bind("\n")
        .bind(change_json(&Change::appended(line)))
}

/// Appends a line to a record's notes as a new revision; returns the new revision and its
/// text.
pub async fn append_line(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    ts: i64,
    author: &Author,
    line: &str,
) -> Result<(i64, String)> {
    if let Some(appended) = append_to_known(tx, kind, id, ts, author, line).await? {
        return Ok(appended);
    }
    let sql = append_line_sql!(" RETURNING revision, body");
    appending(sql, kind, id, ts, author, line)
        .fetch_one(tx.run())
        .await
}

/// Appends a line nobody reads back (a reason stamped into the notes): on PostgreSQL
/// it goes with the transaction's next statement, as one row of a write that appends
/// to the notes of many records at once (see [`WriteTx::hold_row`]).
pub async fn stamp_line(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    ts: i64,
    author: &Author,
    line: &str,
) -> Result<()> {
    if append_to_known(tx, kind, id, ts, author, line)
        .await?
        .is_some()
    {
        return Ok(());
    }
    if !tx.holds() {
        let write = appending(append_line_sql!(""), kind, id, ts, author, line);
        return write.execute(tx.run()).await.map(|_| ());
    }
    // As `append_line_sql!`, with each column an array of the records' values.
    const STAMP: &str = concat!(
        insert_revisions!(),
        "SELECT v.rt, v.rid, COALESCE(l.revision, 0) + 1, v.ts, v.ak, v.aid, v.ai, v.an, v.ch, \
        CASE WHEN l.body IS NULL OR l.body = '' THEN v.line \
        WHEN substr(l.body, length(l.body), 1) = chr(10) THEN l.body || v.line \
        ELSE l.body || chr(10) || v.line END \
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
        $6::text[], $7::text[], $8::text[], $9::text[]) AS v(rt, rid, ts, ak, aid, ai, an, line, ch) \
        LEFT JOIN LATERAL (SELECT revision, body FROM note_revisions \
        WHERE record_type = v.rt AND record_id = v.rid ORDER BY revision DESC LIMIT 1) AS l ON true"
    );
    let shape = Shape {
        sql: STAMP.into(),
        table: "note_revisions",
    };
    let mut row = vec![
        SqlValue::from(kind.as_str()),
        SqlValue::from(id),
        SqlValue::from(ts),
    ];
    row.extend(author_cells(author));
    row.extend([
        SqlValue::from(line),
        SqlValue::from(change_json(&Change::appended(line))),
    ]);
    tx.hold_row(shape, (kind.as_str(), id), row).await
}

/// The author's columns of a revision, in [`insert_revisions!`]'s order.
fn author_cells(author: &Author) -> [SqlValue; 4] {
    [
        SqlValue::from(author.kind.as_str()),
        SqlValue::from(author.id),
        SqlValue::from(author.initials.as_str()),
        SqlValue::from(author.name.as_str()),
    ]
}

fn change_json(change: &Change) -> String {
    serde_json::to_string(change).expect("a list of strings serialises")
}

pub async fn insert_status_note(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
    note: &StatusNote,
) -> Result<()> {
    let sql = "INSERT INTO status_notes (record_type, record_id, ts, actor_kind, actor_id, \
               actor_initials, body, audit_idx) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let write = statement(sql)
        .bind(kind.as_str())
        .bind(id)
        .bind(note.ts)
        .bind(note.actor_kind.as_str())
        .bind(note.actor_id)
        .bind(note.initials.as_str())
        .bind(note.text.as_str())
        .bind(note.audit_idx);
    // Nobody reads it back: on PostgreSQL it goes with the next statement.
    tx.hold(write, "status_notes").await
}

/// Status notes newest first, before the keyset `(ts, id)`, at most `limit`.
pub async fn status_notes(
    db: &Db,
    kind: RecordKind,
    id: i64,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<StatusNote>> {
    let sql = "SELECT id, ts, actor_kind, actor_id, actor_initials, body, audit_idx FROM status_notes \
               WHERE record_type = $1 AND record_id = $2 AND (ts < $3 OR (ts = $3 AND id < $4)) \
               ORDER BY ts DESC, id DESC LIMIT $5";
    let mut conn = db.reader().await?;
    type Row = (i64, i64, String, Option<i64>, String, String, Option<i64>);
    let rows: Vec<Row> = page(sql, kind, id, before, limit)
        .fetch_all(conn.run())
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, ts, actor_kind, actor_id, initials, text, audit_idx)| StatusNote {
                id,
                ts,
                actor_kind,
                actor_id,
                initials,
                text,
                audit_idx,
            },
        )
        .collect())
}
