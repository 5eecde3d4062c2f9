//! The audit log's tables: entries (their canonical bytes plus indexed copies of a few
//! fields for queries, and the link to their record's previous entry), each record's
//! newest entry, and the head (size). Entries are only ever appended.

use std::{collections::BTreeMap, sync::LazyLock};

use serde::Serialize;

use super::{
    Backend, CellKind, Db, Result, Run, SqlValue, WriteTx, on_conn, statement, statement::lists,
};
use crate::domain::merkle;
use crate::domain::record::RecordKind;

/// What the ledger appends: the bytes, their leaf hash, and the columns queries use.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub idx: i64,
    pub ts: i64,
    pub category: &'static str,
    pub action: &'static str,
    pub actor_kind: &'static str,
    pub actor_id: Option<i64>,
    pub record_type: Option<String>,
    pub record_id: Option<i64>,
    pub bytes: Vec<u8>,
    pub leaf_hash: [u8; 32],
}

impl NewEntry {
    /// The kinds of [`NewEntry::values`], in order.
    const KINDS: [CellKind; 11] = [
        CellKind::Int,
        CellKind::Int,
        CellKind::Text,
        CellKind::Text,
        CellKind::Text,
        CellKind::Int,
        CellKind::Text,
        CellKind::Int,
        CellKind::Bytes,
        CellKind::Bytes,
        CellKind::Int,
    ];

    /// The row's values, with `prev`, its link where [`links`] found it in the batch.
    fn values(&self, prev: Option<i64>) -> [SqlValue; 11] {
        [
            self.idx.into(),
            self.ts.into(),
            self.category.into(),
            self.action.into(),
            self.actor_kind.into(),
            self.actor_id.into(),
            self.record_type.clone().into(),
            self.record_id.into(),
            self.bytes.clone().into(),
            self.leaf_hash.as_slice().into(),
            prev.into(),
        ]
    }

    fn record(&self) -> Option<(&str, i64)> {
        self.record_type.as_deref().zip(self.record_id)
    }
}

/// A record's head: `(record_type, record_id, newest entry)`.
type Head = (String, i64, i64);

/// Each entry's link to the one before it on its record where that one is among
/// `entries` too (for the first of each record the stored head is read as it is
/// stored, see [`LINK`]), and each record's newest entry among them: its new head.
fn links(entries: &[NewEntry]) -> (Vec<Option<i64>>, Vec<Head>) {
    let mut newest: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    let prevs = entries
        .iter()
        .map(|e| e.record().and_then(|r| newest.insert(r, e.idx)))
        .collect();
    let heads = newest
        .into_iter()
        .map(|((kind, id), head)| (kind.to_owned(), id, head))
        .collect();
    (prevs, heads)
}

/// An entry's link when [`links`] left it to the stored head: `{prev}` the one found
/// in the batch, `{kind}` and `{id}` the entry's record. Read before the batch moves
/// the heads, which it does after storing its entries.
const LINK: &str = "COALESCE({prev}, (SELECT h.head FROM audit_heads h \
                    WHERE h.record_type = {kind} AND h.record_id = {id}))";

/// Moves each record's head to its newest entry (PostgreSQL).
const UPSERT_HEADS: &str = "INSERT INTO audit_heads (record_type, record_id, head) VALUES ";
const HEADS_MOVE: &str = " ON CONFLICT (record_type, record_id) DO UPDATE SET head = excluded.head";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub idx: i64,
    pub ts: i64,
    pub bytes: Vec<u8>,
}

/// The number of entries, under the writer's lock.
pub async fn head_size(tx: &mut WriteTx) -> Result<i64> {
    statement("SELECT size FROM log_head WHERE id = 1")
        .scalar(tx.run())
        .await
}

/// The time of entry `idx`, under the writer's lock (none before the first entry).
pub async fn ts_for_write(tx: &mut WriteTx, idx: i64) -> Result<Option<i64>> {
    Ok(statement("SELECT ts FROM audit_log WHERE idx = $1")
        .bind(idx)
        .fetch_optional::<(i64,)>(tx.run())
        .await?
        .map(|(ts,)| ts))
}

const INSERT_ENTRIES: &str = "INSERT INTO audit_log (idx, ts, category, action, actor_kind, \
                              actor_id, record_type, record_id, entry, leaf_hash, prev_idx) VALUES ";

/// One row of [`INSERT_ENTRIES`], its parameters numbered after the first `skip`.
fn entry_row(skip: usize) -> String {
    let p = |n: usize| format!("${}", skip + n);
    let columns: Vec<String> = (1..=10).map(p).collect();
    let link = LINK
        .replace("{prev}", &p(11))
        .replace("{kind}", &p(7))
        .replace("{id}", &p(8));
    format!("({}, {link})", columns.join(", "))
}

/// Stores a batch's entries, linked to their records' previous ones, and moves their
/// records' heads. Through sqlx, several to a statement: on PostgreSQL every statement
/// is a round trip. On the writer's own SQLite connection, one prepared statement per
/// row: a statement of many rows would be prepared anew for every size.
pub async fn append(tx: &mut WriteTx, entries: &[NewEntry]) -> Result<()> {
    let (prevs, heads) = links(entries);
    if tx.prepares_once() {
        // A statement per kind of record, each reading its kind's head directly.
        static ONE: LazyLock<Vec<String>> = LazyLock::new(|| {
            let link = |k: RecordKind| {
                format!(
                    "COALESCE($11, (SELECT audit_head FROM {} WHERE id = $8))",
                    k.table()
                )
            };
            let columns: Vec<String> = (1..=10).map(|n| format!("${n}")).collect();
            let row = |link: String| format!("{INSERT_ENTRIES}({}, {link})", columns.join(", "));
            let mut one: Vec<String> = RecordKind::ALL.map(|k| row(link(k))).into();
            one.push(row("$11".into()));
            one
        });
        for (entry, prev) in entries.iter().zip(&prevs) {
            let kind = entry.record_type.as_deref();
            let at = RecordKind::ALL
                .iter()
                .position(|k| Some(k.as_str()) == kind)
                .unwrap_or(RecordKind::ALL.len());
            let one = statement(ONE[at].as_str()).bind_all(entry.values(*prev));
            one.execute(tx.run()).await?;
        }
        return move_heads(tx, heads).await;
    }
    let rows: Vec<_> = entries.iter().zip(prevs).collect();
    for chunk in rows.chunks(100) {
        let sql: Vec<String> = (0..chunk.len()).map(|i| entry_row(11 * i)).collect();
        statement(format!("{INSERT_ENTRIES}{}", sql.join(", ")))
            .bind_all(chunk.iter().flat_map(|(e, prev)| e.values(*prev)))
            .execute(tx.run())
            .await?;
    }
    move_heads(tx, heads).await
}

/// Moves each record's head to its newest entry: on SQLite a column of the record's
/// own row (migration 15), on PostgreSQL a row of `audit_heads`.
async fn move_heads(tx: &mut WriteTx, heads: Vec<Head>) -> Result<()> {
    if tx.backend() == Backend::Sqlite {
        for (kind, id, head) in heads {
            let kind = RecordKind::parse(&kind).ok_or_else(|| {
                super::Error::Corrupt(format!("an entry names a record of no kind: {kind}"))
            })?;
            statement(format!(
                "UPDATE {} SET audit_head = $1 WHERE id = $2",
                kind.table()
            ))
            .bind(head)
            .bind(id)
            .execute(tx.run())
            .await?;
        }
        return Ok(());
    }
    for chunk in heads.chunks(100) {
        statement(format!(
            "{UPSERT_HEADS}{}{HEADS_MOVE}",
            rows_of(chunk.len(), 3, 0)
        ))
        .bind_all(chunk.iter().flat_map(|(kind, id, head)| -> [SqlValue; 3] {
            [kind.clone().into(), (*id).into(), (*head).into()]
        }))
        .execute(tx.run())
        .await?;
    }
    Ok(())
}

/// `n` rows of `width` parameters each, numbered after the first `skip`.
fn rows_of(n: usize, width: usize, skip: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let params: Vec<String> = (1..=width)
                .map(|p| format!("${}", skip + width * i + p))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// The log's size as recorded in its head.
pub async fn size(db: &Db) -> Result<i64> {
    let mut conn = db.acquire().await?;
    on_conn!(conn.conn(), c => Ok(sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
        .fetch_one(&mut *c).await?))
}

/// Which entries to read. Results are newest first; `before` continues a page.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Inclusive lower bound, microseconds.
    pub from_ts: Option<i64>,
    /// Exclusive upper bound, microseconds.
    pub to_ts: Option<i64>,
    pub actor_id: Option<i64>,
    pub category: Option<String>,
    pub action: Option<String>,
    pub record_type: Option<String>,
    pub record_id: Option<i64>,
    /// Keyset cursor: only entries before this (ts, idx).
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

pub async fn query(db: &Db, f: &Filter) -> Result<Vec<StoredEntry>> {
    // Each clause names its columns through `{t}`, so that it can read the keys of the
    // indexed entries and the log's own columns for the tail, or a record's chain.
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut add = |clause: &str, v: SqlValue| {
        values.push(v);
        clauses.push(clause.replace('?', &format!("${}", values.len())));
    };
    if let Some(v) = f.from_ts {
        add("{t}ts >= ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = f.to_ts {
        add("{t}ts < ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = f.actor_id {
        add("{t}actor_id = ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = &f.category {
        add("{t}category = ?", SqlValue::Text(Some(v.clone())));
    }
    if let Some(v) = &f.action {
        add("{t}action = ?", SqlValue::Text(Some(v.clone())));
    }
    // On SQLite one record's entries are its chain; a kind alone, or an id alone, is a
    // search. PostgreSQL's index by record is on the log itself (migration 0015).
    let postgres = db.backend() == Backend::Postgres;
    let mut record = None;
    match (&f.record_type, f.record_id) {
        (Some(kind), Some(id)) if !postgres => {
            values.push(SqlValue::Text(Some(kind.clone())));
            values.push(SqlValue::Int(Some(id)));
            record = Some((
                format!("${}", values.len() - 1),
                format!("${}", values.len()),
            ));
        }
        (kind, id) => {
            if let Some(v) = kind {
                add("{t}record_type = ?", SqlValue::Text(Some(v.clone())));
            }
            if let Some(v) = id {
                add("{t}record_id = ?", SqlValue::Int(Some(v)));
            }
        }
    }
    if let Some((ts, idx)) = f.before {
        values.push(SqlValue::Int(Some(ts)));
        values.push(SqlValue::Int(Some(idx)));
        clauses.push(format!(
            "({{t}}ts < ${a} OR ({{t}}ts = ${a} AND {{t}}idx < ${b}))",
            a = values.len() - 1,
            b = values.len()
        ));
    }
    values.push(SqlValue::Int(Some(f.limit)));
    let limit = format!("${}", values.len());
    let sql = match record {
        Some((kind, id)) => {
            let walk = chain(&kind, &id);
            let (_, clauses) = named("c.", &clauses, "");
            let and = if clauses.is_empty() { "" } else { " AND " };
            format!(
                "WITH RECURSIVE {walk} SELECT l.idx, l.ts, l.entry \
                 FROM (SELECT c.idx FROM chain c WHERE c.kept{and}{clauses} LIMIT {limit}) AS c \
                 JOIN audit_log l ON l.idx = c.idx ORDER BY l.ts DESC, l.idx DESC"
            )
        }
        None => {
            // Archived entries keep their row but not their body: they are in archive files.
            clauses.push("length(l.entry) > 0".to_owned());
            if postgres && f.record_type.is_some() {
                let (_, clauses) = named("l.", &clauses, "");
                format!(
                    "SELECT l.idx, l.ts, l.entry FROM audit_log l WHERE {clauses} \
                     ORDER BY l.ts DESC, l.idx DESC LIMIT {limit}"
                )
            } else {
                newest_first(&clauses, &limit, "l.idx, l.ts, l.entry")
            }
        }
    };
    let mut conn = db.reader().await?;
    let rows: Vec<(i64, i64, Vec<u8>)> = statement(sql)
        .bind_all(values)
        .fetch_all(conn.run())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(idx, ts, bytes)| StoredEntry { idx, ts, bytes })
        .collect())
}

/// The entries whose keys meet every clause, newest first, at most `limit`, as
/// `columns` of `audit_log l` (naming `idx` and `ts` among them), from both [`parts`].
/// One statement, so both parts read the same snapshot.
pub(crate) fn newest_first(clauses: &[String], limit: &str, columns: &str) -> String {
    let [indexed, tail] = parts(clauses, columns);
    format!(
        "SELECT * FROM ({} ORDER BY {} LIMIT {limit}) AS indexed \
         UNION ALL SELECT * FROM ({} ORDER BY {} LIMIT {limit}) AS tail \
         ORDER BY ts DESC, idx DESC LIMIT {limit}",
        indexed.select, indexed.newest_first, tail.select, tail.newest_first
    )
}

/// One of the two halves of an audit search.
pub(crate) struct Part {
    pub select: String,
    /// The order that reads it newest first, along its index.
    pub newest_first: &'static str,
}

/// The two halves that find the entries whose keys meet every clause: those already in
/// `audit_keys` (as `k`) through its indexes, and the tail after them (a few hundred
/// entries at most, see the writer) from the log itself, each with the entry as `l`.
/// Clauses and `columns` name a key's table as `{t}`.
pub(crate) fn parts(clauses: &[String], columns: &str) -> [Part; 2] {
    let ((indexed_columns, indexed), (tail_columns, tail)) =
        (named("k.", clauses, columns), named("l.", clauses, columns));
    [
        Part {
            select: format!(
                "SELECT {indexed_columns} FROM audit_keys k JOIN audit_log l ON l.idx = k.idx \
                 WHERE {indexed}"
            ),
            newest_first: "k.ts DESC, k.idx DESC",
        },
        Part {
            select: format!("SELECT {tail_columns} FROM audit_log l WHERE {TAIL} AND {tail}"),
            newest_first: "l.ts DESC, l.idx DESC",
        },
    ]
}

/// A record's entries, newest first, as the recursive CTE `chain` (SQLite's history): from the record's
/// head (`audit_heads`) along each entry's link to the one before it, by the log's own
/// key. Each row has the keys searches filter on, and whether the entry still has its
/// body (`kept`; archived entries keep their row but not their body). `kind` and `id`
/// name the record's parameters. The walk only goes to lower indexes and only through
/// entries of the record, so no damaged link can loop or lead into another record's
/// history; `audit verify` names such links.
///
/// Both databases read it only as far as the query that uses it takes rows, so a page
/// costs a lookup per entry up to its end.
pub(crate) fn chain(kind: &str, id: &str) -> String {
    let row = "l.idx, l.ts, l.prev_idx, l.category, l.action, l.actor_id, length(l.entry) > 0";
    let ours = format!("l.record_type = {kind} AND l.record_id = {id}");
    format!(
        "chain (idx, ts, prev, category, action, actor_id, kept) AS ( \
           SELECT {row} FROM audit_heads h JOIN audit_log l ON l.idx = h.head \
             WHERE h.record_type = {kind} AND h.record_id = {id} AND {ours} \
           UNION ALL SELECT {row} FROM chain c JOIN audit_log l ON l.idx = c.prev \
             WHERE l.idx < c.idx AND {ours})"
    )
}

/// `columns`, and `clauses` joined by AND, with `{t}` naming the table as `t`.
fn named(t: &str, clauses: &[String], columns: &str) -> (String, String) {
    let all: Vec<String> = clauses.iter().map(|c| c.replace("{t}", t)).collect();
    (columns.replace("{t}", t), all.join(" AND "))
}

/// The index of the last entry whose keys are in `audit_keys` (-1 for none): keys are
/// added in index order without gaps, so everything after it is the unindexed tail.
/// A macro so that [`TAIL`] can be built from it at compile time.
macro_rules! keyed {
    () => {
        "(SELECT COALESCE(MAX(idx), -1) FROM audit_keys)"
    };
}
const KEYED: &str = keyed!();

/// The unindexed tail: after the keyed entries, below the head. The upper bound is true
/// of every entry of the log; it is there for PostgreSQL's planner, which takes a lone
/// `idx > (subquery)` to match a third of the log and plans a parallel scan for it (a
/// millisecond of worker start-up in every query), but a range bounded on both sides
/// for the few rows it is.
const TAIL: &str = concat!(
    "l.idx > ",
    keyed!(),
    " AND l.idx < (SELECT size FROM log_head WHERE id = 1)"
);

/// Copies the keys of every entry not yet in `audit_keys` there, in the writer's
/// transaction. Entries commit in index order, so the unindexed ones are always the
/// newest; a second writer doing the same at the same time (servers sharing PostgreSQL)
/// leaves its copies to whichever commits first. On PostgreSQL the copy is held for the
/// transaction's last statement, whose snapshot holds the entries committed before it:
/// a batch's own entries are copied by a later one. On an SQLite file the keys' copier
/// does it once the transaction commits (see `key_file`).
pub async fn index_tail(tx: &mut WriteTx) -> Result<()> {
    if tx.copy_keys_after() {
        return Ok(());
    }
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO audit_keys (idx, ts, category, action, actor_id, record_type, \
             record_id) SELECT idx, ts, category, action, actor_id, record_type, record_id \
             FROM audit_log WHERE idx > {KEYED} ORDER BY idx ON CONFLICT (idx) DO NOTHING"
        )
    });
    tx.hold(statement(SQL.as_str()), "audit_keys").await
}

/// How many entries have their keys in `audit_keys`, the highest such index plus one,
/// and the first keys (at most `limit`, from `from` on) that are not a copy of their
/// entry's columns or have no entry at all.
///
/// The entries below `upto` are the ones the caller has read: keys are copied after
/// their entries commit, so a statement may see newer keys than entries (SQLite reads
/// the keys' file and the log at moments of their own), and a key past `upto` cannot be
/// judged by its entry yet. Past it, only a key beyond the log's end as read after the
/// keys is known to have none, and the newest key is checked for that.
pub async fn keys_check(db: &Db, from: i64, upto: i64, limit: i64) -> Result<(i64, i64, Vec<i64>)> {
    let mut conn = db.acquire().await?;
    let (count, end): (i64, i64) = on_conn!(conn.conn(), c => sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(idx), -1) + 1 FROM audit_keys")
        .fetch_one(&mut *c).await?);
    // `=` with COALESCE rather than IS NOT DISTINCT FROM, which SQLite spells `IS`.
    let sql = "SELECT k.idx FROM audit_keys k LEFT JOIN audit_log l ON l.idx = k.idx \
               WHERE k.idx >= $1 AND k.idx < $2 AND NOT (l.idx IS NOT NULL AND k.ts = l.ts \
               AND k.category = l.category AND k.action = l.action \
               AND COALESCE(k.actor_id, -1) = COALESCE(l.actor_id, -1) \
               AND COALESCE(k.record_type, '') = COALESCE(l.record_type, '') \
               AND COALESCE(k.record_id, -1) = COALESCE(l.record_id, -1)) \
               ORDER BY k.idx LIMIT $3";
    let bad: Vec<(i64,)> = on_conn!(conn.conn(), c => sqlx::query_as(sql)
        .bind(from).bind(upto).bind(limit).fetch_all(&mut *c).await?);
    let mut bad: Vec<i64> = bad.into_iter().map(|(i,)| i).collect();
    let (size,): (i64,) = on_conn!(conn.conn(), c => sqlx::query_as(
        "SELECT size FROM log_head WHERE id = 1").fetch_one(&mut *c).await?);
    if end > size.max(upto) && (bad.len() as i64) < limit {
        bad.push(end - 1);
    }
    Ok((count, end, bad))
}

/// A stored tree node: (level, index) → hash.
pub type Node = (u8, u64, [u8; 32]);

/// The leaf whose append completes node `(level, idx)`, which spans the leaves
/// `[idx·2^level, (idx+1)·2^level)`: `audit_tree` is keyed by it, then by level, so the
/// nodes one append completes are neighbours in the key.
pub fn completing_leaf(level: u8, idx: u64) -> u64 {
    // Saturating: a node past any possible log (an id asked for by a bad proof request)
    // gets a key no row has, and is simply not found.
    let width = 1u64.checked_shl(u32::from(level)).unwrap_or(u64::MAX);
    idx.saturating_add(1).saturating_mul(width) - 1
}

/// The node stored under `(leaf, level)`, if that key names one: a leaf completes a node
/// at `level` only when the node's span ends there.
pub(super) fn node_at(leaf: i64, level: i64, hash: Vec<u8>) -> Result<Node> {
    let corrupt = |what: &str| {
        super::Error::Corrupt(format!("tree node at leaf {leaf}, level {level} {what}"))
    };
    let (Ok(level8), Ok(leaf)) = (u8::try_from(level), u64::try_from(leaf)) else {
        return Err(corrupt("has an impossible key"));
    };
    if level8 > 62 || (leaf + 1) % (1u64 << level8) != 0 {
        return Err(corrupt("ends no subtree"));
    }
    let hash = hash.try_into().map_err(|_| corrupt("is not 32 bytes"))?;
    Ok((level8, ((leaf + 1) >> level8) - 1, hash))
}

/// The lowest level of the tree that is stored. Each node under it spans at most
/// 2^(`LOWEST_STORED` − 1) leaves, and is recomputed from their hashes whenever it is
/// asked for: an append then stores a node once in 128 entries on average instead of at
/// nearly every one, so most commits do not write the tree's page at all.
pub const LOWEST_STORED: u8 = 8;

/// The leaves `[start, end)` a node spans, if that range can exist.
fn span(level: u8, idx: u64) -> Option<(u64, u64)> {
    let width = 1u64.checked_shl(u32::from(level))?;
    let start = idx.checked_mul(width)?;
    Some((start, start.checked_add(width)?))
}

/// The nodes with these ids. Level 0, the leaves, is each entry's own leaf hash in
/// `audit_log`; `audit_tree` holds the nodes from [`LOWEST_STORED`] up, and the ones
/// between are computed from the leaf hashes under them. An id whose node cannot be
/// read or computed (a leaf under it is missing) is simply absent.
async fn nodes_in(run: Run<'_>, ids: &[(u8, u64)]) -> Result<Vec<Node>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let int = |v: u64| SqlValue::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)));
    let mut values = Vec::new();
    let (mut leaves, mut above, mut computed) = (Vec::new(), Vec::new(), Vec::new());
    for &(level, idx) in ids {
        if level == 0 {
            values.push(int(idx));
            leaves.push(format!("${}", values.len()));
        } else if level < LOWEST_STORED {
            computed.extend(span(level, idx).map(|span| (level, idx, span)));
        } else {
            values.extend([int(completing_leaf(level, idx)), int(u64::from(level))]);
            above.push(format!(
                "(leaf = ${} AND level = ${})",
                values.len() - 1,
                values.len()
            ));
        }
    }
    let mut selects = Vec::new();
    if !above.is_empty() {
        selects.push(format!(
            "SELECT leaf, level, hash FROM audit_tree WHERE {}",
            above.join(" OR ")
        ));
    }
    let leaf_rows = "SELECT idx AS leaf, CAST(0 AS BIGINT) AS level, leaf_hash AS hash \
                     FROM audit_log WHERE";
    if !leaves.is_empty() {
        selects.push(format!("{leaf_rows} idx IN ({})", leaves.join(", ")));
    }
    // A range per run of neighbouring spans: the nodes of one proof or one edge of the
    // tree lie under a few hundred leaves.
    let mut spans: Vec<(u64, u64)> = computed.iter().map(|(.., span)| *span).collect();
    spans.sort_unstable();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (start, end) in spans {
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    for (start, end) in &ranges {
        values.extend([int(*start), int(*end)]);
        selects.push(format!(
            "{leaf_rows} idx >= ${} AND idx < ${}",
            values.len() - 1,
            values.len()
        ));
    }
    let sql = selects.join(" UNION ALL ");
    let rows: Vec<(i64, i64, Vec<u8>)> = statement(sql).bind_all(values).fetch_all(run).await?;
    let mut found = rows
        .into_iter()
        .map(|(leaf, level, hash)| node_at(leaf, level, hash))
        .collect::<Result<Vec<Node>>>()?;
    let hashes: BTreeMap<u64, [u8; 32]> = found
        .iter()
        .filter(|(level, ..)| *level == 0)
        .map(|(_, idx, hash)| (*idx, *hash))
        .collect();
    // Only the leaves asked for are answered as leaves; the rest were read to compute.
    found.retain(|(level, idx, _)| *level > 0 || ids.contains(&(0, *idx)));
    found.sort_unstable();
    found.dedup();
    for (level, idx, (start, end)) in computed {
        let under: Option<Vec<[u8; 32]>> = (start..end).map(|i| hashes.get(&i).copied()).collect();
        if let Some(under) = under {
            found.push((level, idx, merkle::root(&under)));
        }
    }
    Ok(found)
}

/// The stored tree nodes with these ids (missing ones are simply absent).
pub async fn nodes(db: &Db, ids: &[(u8, u64)]) -> Result<Vec<Node>> {
    let mut conn = db.reader().await?;
    nodes_in(conn.run(), ids).await
}

pub async fn nodes_for_write(tx: &mut WriteTx, ids: &[(u8, u64)]) -> Result<Vec<Node>> {
    nodes_in(tx.run(), ids).await
}

/// The nodes appends completed that are stored: those from [`LOWEST_STORED`] up (a leaf
/// is its entry's own `leaf_hash`, and the levels between are computed from the leaves).
fn upper(nodes: &[Node]) -> Vec<Node> {
    nodes
        .iter()
        .filter(|(level, ..)| *level >= LOWEST_STORED)
        .copied()
        .collect()
}

fn node_values(nodes: &[Node]) -> impl Iterator<Item = SqlValue> + '_ {
    nodes.iter().flat_map(|(level, idx, hash)| {
        [
            SqlValue::Int(Some(
                i64::try_from(completing_leaf(*level, *idx)).unwrap_or(i64::MAX),
            )),
            SqlValue::Int(Some(i64::from(*level))),
            SqlValue::Bytes(Some(hash.to_vec())),
        ]
    })
}

const INSERT_NODES: &str = "INSERT INTO audit_tree (leaf, level, hash) VALUES ";

/// Stores the nodes appends completed above the leaves.
pub async fn insert_nodes(tx: &mut WriteTx, nodes: &[Node]) -> Result<()> {
    // One statement for a batch's nodes (an append completes one on average): each
    // statement costs a round trip on PostgreSQL, and appends are every audited write.
    for chunk in upper(nodes).chunks(300) {
        statement(format!("{INSERT_NODES}{}", rows_of(chunk.len(), 3, 0)))
            .bind_all(node_values(chunk))
            .execute(tx.run())
            .await?;
    }
    Ok(())
}

/// A batch's entries, their records' heads, tree nodes and head in one statement
/// (PostgreSQL's data-modifying `WITH`), each column bound as an array, so that its text
/// is the same for any number of entries and nodes. Its parts see the heads as they were
/// before it, which is what the entries' links want.
static HOLD_ENTRIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, record_type, \
         record_id, entry, leaf_hash, prev_idx) \
         SELECT u.idx, u.ts, u.category, u.action, u.actor_kind, u.actor_id, u.record_type, \
           u.record_id, u.entry, u.leaf_hash, {} \
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
           $6::bigint[], $7::text[], $8::bigint[], $9::bytea[], $10::bytea[], $11::bigint[]) \
           AS u(idx, ts, category, action, actor_kind, actor_id, record_type, record_id, \
             entry, leaf_hash, prev)",
        LINK.replace("{prev}", "u.prev")
            .replace("{kind}", "u.record_type")
            .replace("{id}", "u.record_id")
    )
});

const HOLD_HEADS: &str = "INSERT INTO audit_heads (record_type, record_id, head) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) \
     ON CONFLICT (record_type, record_id) DO UPDATE SET head = excluded.head";

/// The kinds of a head's values, in order.
const HEAD_KINDS: [CellKind; 3] = [CellKind::Text, CellKind::Int, CellKind::Int];

const HOLD_NODES: &str = "INSERT INTO audit_tree (leaf, level, hash) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])";

/// The kinds of [`node_values`], in order.
const NODE_KINDS: [CellKind; 3] = [CellKind::Int, CellKind::Int, CellKind::Bytes];

/// Stores a batch's entries and tree nodes and moves the head to `(size, root)`.
///
/// On PostgreSQL it holds them for the transaction's last statement, which moves the
/// head (see `WriteTx::send_last`): each statement is a round trip there, and an audited
/// write alone in its batch would otherwise pay three more than a bare one. It runs
/// after the batch's commands, when the count of rows written no longer decides
/// anything.
pub async fn store_batch(
    tx: &mut WriteTx,
    entries: &[NewEntry],
    nodes: &[Node],
    size: i64,
    root: &[u8; 32],
) -> Result<()> {
    let nodes = upper(nodes);
    if !tx.writes_tables_together() {
        append(tx, entries).await?;
        insert_nodes(tx, &nodes).await?;
        return set_head(tx, size, root).await;
    }
    // All, even empty: the last statement then has one text for any batch. The entries
    // go first: what is held already is sent before a statement that reads its table.
    let (prevs, heads) = links(entries);
    let values = entries
        .iter()
        .zip(prevs)
        .flat_map(|(e, prev)| e.values(prev));
    let values = lists(&NewEntry::KINDS, values);
    tx.hold(
        statement(HOLD_ENTRIES.as_str()).bind_all(values),
        "audit_log",
    )
    .await?;
    let values = heads
        .into_iter()
        .flat_map(|(kind, id, head)| -> [SqlValue; 3] { [kind.into(), id.into(), head.into()] });
    let values = lists(&HEAD_KINDS, values);
    tx.hold(statement(HOLD_HEADS).bind_all(values), "audit_heads")
        .await?;
    let values = lists(&NODE_KINDS, node_values(&nodes));
    tx.hold(statement(HOLD_NODES).bind_all(values), "audit_tree")
        .await?;
    tx.move_head(size, *root);
    Ok(())
}

/// Every leaf hash in index order, for rebuilding a tree the log predates.
pub async fn leaf_hashes_for_write(tx: &mut WriteTx) -> Result<Vec<[u8; 32]>> {
    let rows: Vec<(Vec<u8>,)> = statement("SELECT leaf_hash FROM audit_log ORDER BY idx")
        .fetch_all(tx.run())
        .await?;
    rows.into_iter()
        .map(|(h,)| {
            h.try_into()
                .map_err(|_| super::Error::Corrupt("a leaf hash is not 32 bytes".into()))
        })
        .collect()
}

/// Moves the head to a size (`$1`) and root (`$2`).
pub(super) const SET_HEAD: &str = "UPDATE log_head SET size = $1, root = $2 WHERE id = 1";

pub async fn set_head(tx: &mut WriteTx, size: i64, root: &[u8; 32]) -> Result<()> {
    statement(SET_HEAD)
        .bind(size)
        .bind(root.as_slice())
        .execute(tx.run())
        .await?;
    Ok(())
}

/// The head as recorded: size and root (no root before the first entry).
pub async fn head(db: &Db) -> Result<(i64, Option<Vec<u8>>)> {
    let mut conn = db.acquire().await?;
    on_conn!(conn.conn(), c => Ok(sqlx::query_as("SELECT size, root FROM log_head WHERE id = 1")
        .fetch_one(&mut *c).await?))
}

/// One stored entry row, every column, for verification.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Row {
    pub idx: i64,
    pub ts: i64,
    pub category: String,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub record_type: Option<String>,
    pub record_id: Option<i64>,
    pub bytes: Vec<u8>,
    pub leaf_hash: Vec<u8>,
    pub prev_idx: Option<i64>,
}

/// Rows from `from_idx` up to (not including) `to_idx`, in index order, at most `limit`.
pub async fn rows(db: &Db, from_idx: i64, to_idx: i64, limit: i64) -> Result<Vec<Row>> {
    let mut conn = db.acquire().await?;
    // On SQLite `CAST(... AS BLOB)` keeps the bytes exactly as stored, whatever their type.
    let sql = match conn.conn() {
        super::Conn::Sqlite(_) => {
            "SELECT idx, ts, category, action, actor_kind, actor_id, record_type, record_id, \
             CAST(entry AS BLOB) AS bytes, CAST(leaf_hash AS BLOB) AS leaf_hash, prev_idx \
             FROM audit_log \
             WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3"
        }
        super::Conn::Postgres(_) => {
            "SELECT idx, ts, category, action, actor_kind, actor_id, record_type, record_id, \
             entry AS bytes, leaf_hash, prev_idx FROM audit_log \
             WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3"
        }
    };
    on_conn!(conn.conn(), c => Ok(sqlx::query_as(sql)
        .bind(from_idx)
        .bind(to_idx)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?))
}

/// Every record's head: `(record_type, record_id, head)`.
pub async fn heads(db: &Db) -> Result<Vec<(String, i64, i64)>> {
    let mut conn = db.acquire().await?;
    let sql = "SELECT record_type, record_id, head FROM audit_heads";
    on_conn!(conn.conn(), c => Ok(sqlx::query_as(sql).fetch_all(&mut *c).await?))
}

/// The record each of the entries `idxs` names, where it has one:
/// `(idx, record_type, record_id)`.
pub async fn records_of(db: &Db, idxs: &[i64]) -> Result<Vec<(i64, String, i64)>> {
    let mut out = Vec::new();
    let mut conn = db.reader().await?;
    for chunk in idxs.chunks(500) {
        let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT idx, record_type, record_id FROM audit_log WHERE idx IN ({}) \
             AND record_type IS NOT NULL AND record_id IS NOT NULL",
            params.join(", ")
        );
        let rows: Vec<(i64, String, i64)> = statement(sql)
            .bind_all(chunk.iter().map(|i| SqlValue::from(*i)))
            .fetch_all(conn.run())
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The stored tree nodes above the leaves completed by the leaves `$1..$2`: one range of
/// `audit_tree`'s key, so no scan of the whole tree. Also read directly by the log
/// reader on SQLite.
pub(super) const NODES_IN_RANGE: &str =
    "SELECT leaf, level, hash FROM audit_tree WHERE leaf >= $1 AND leaf < $2 AND level > 0";

/// The stored tree nodes above the leaves completed by the leaves `[from, to)`
/// ([`NODES_IN_RANGE`]).
pub async fn nodes_in_range(db: &Db, from_leaf: u64, to_leaf: u64) -> Result<Vec<Node>> {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut conn = db.acquire().await?;
    let rows: Vec<(i64, i64, Vec<u8>)> = on_conn!(conn.conn(), c =>
        sqlx::query_as(NODES_IN_RANGE).bind(int(from_leaf)).bind(int(to_leaf))
            .fetch_all(&mut *c).await?);
    rows.into_iter()
        .map(|(leaf, level, hash)| node_at(leaf, level, hash))
        .collect()
}

/// The names of the guard-rail triggers present on the log's tables.
pub async fn guard_triggers(db: &Db) -> Result<Vec<String>> {
    let mut conn = db.acquire().await?;
    let names: Vec<(String,)> =
        match conn.conn() {
            super::Conn::Sqlite(c) => {
                sqlx::query_as(
                    "SELECT name FROM main.sqlite_master WHERE type = 'trigger' \
                     UNION ALL SELECT name FROM keys.sqlite_master WHERE type = 'trigger'",
                )
                .fetch_all(&mut *c)
                .await?
            }
            super::Conn::Postgres(c) => sqlx::query_as(
                "SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'",
            )
            .fetch_all(&mut *c)
            .await?,
        };
    Ok(names.into_iter().map(|(n,)| n).collect())
}

pub async fn insert_checkpoint(
    tx: &mut WriteTx,
    size: i64,
    root: &[u8; 32],
    ts: i64,
    note: &str,
) -> Result<()> {
    let sql = "INSERT INTO checkpoints (size, root, ts, note) VALUES ($1, $2, $3, $4)";
    statement(sql)
        .bind(size)
        .bind(root.as_slice())
        .bind(ts)
        .bind(note)
        .execute(tx.run())
        .await?;
    Ok(())
}

/// Stored checkpoint notes, newest first.
pub async fn checkpoints(db: &Db, limit: i64) -> Result<Vec<(i64, i64, String)>> {
    let mut conn = db.acquire().await?;
    on_conn!(conn.conn(), c => Ok(sqlx::query_as("SELECT size, ts, note FROM checkpoints ORDER BY id DESC LIMIT $1")
        .bind(limit).fetch_all(&mut *c).await?))
}

/// In one snapshot: the head's size now, and how many entries are stored at or beyond
/// `from_idx`. (Writers append while a verify runs; both change together.)
pub async fn size_and_count_from(db: &Db, from_idx: i64) -> Result<(i64, i64)> {
    let sql =
        "SELECT size, (SELECT COUNT(*) FROM audit_log WHERE idx >= $1) FROM log_head WHERE id = 1";
    let mut conn = db.acquire().await?;
    on_conn!(conn.conn(), c => Ok(sqlx::query_as(sql).bind(from_idx).fetch_one(&mut *c).await?))
}

/// Whether the head has a root. Every ledger since the tree moves the root with the
/// size, so a log with entries and no root predates its tree; a log with a root whose
/// tree lacks a node was appended to by something other than a ledger. (The lower
/// levels are not stored, so an empty tree no longer tells the two apart.)
pub async fn head_has_root(tx: &mut WriteTx) -> Result<bool> {
    let n: i64 = statement("SELECT COUNT(*) FROM log_head WHERE id = 1 AND root IS NOT NULL")
        .scalar(tx.run())
        .await?;
    Ok(n > 0)
}

/// One archive run as recorded beside the log.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ArchiveRun {
    pub from_idx: i64,
    pub to_idx: i64,
    pub entry_idx: i64,
    pub tree_size: i64,
    pub ts: i64,
    pub file: String,
}

impl ArchiveRun {
    fn from_row(
        (from_idx, to_idx, entry_idx, tree_size, ts, file): (i64, i64, i64, i64, i64, String),
    ) -> Self {
        Self {
            from_idx,
            to_idx,
            entry_idx,
            tree_size,
            ts,
            file,
        }
    }
}

/// The newest archive run, under the writer's lock.
pub async fn last_archive_run_for_write(tx: &mut WriteTx) -> Result<Option<ArchiveRun>> {
    let sql = "SELECT from_idx, to_idx, entry_idx, tree_size, ts, file FROM audit_archive \
               ORDER BY id DESC LIMIT 1";
    Ok(statement(sql)
        .fetch_optional(tx.run())
        .await?
        .map(ArchiveRun::from_row))
}

/// Every archive run, oldest first.
pub async fn archive_runs(db: &Db) -> Result<Vec<ArchiveRun>> {
    let sql = "SELECT from_idx, to_idx, entry_idx, tree_size, ts, file FROM audit_archive \
               ORDER BY id";
    let mut conn = db.acquire().await?;
    on_conn!(conn.conn(), c => Ok(sqlx::query_as(sql).fetch_all(&mut *c).await?))
}

/// The first entry timed at or after `ts`, if any, under the writer's lock.
pub async fn first_at_or_after_for_write(tx: &mut WriteTx, ts: i64) -> Result<Option<i64>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT MIN(i) FROM (SELECT MIN(idx) AS i FROM audit_keys WHERE ts >= $1 \
             UNION ALL SELECT MIN(l.idx) FROM audit_log l WHERE {TAIL} AND l.ts >= $1) AS m"
        )
    });
    statement(SQL.as_str()).bind(ts).scalar(tx.run()).await
}

/// Entries `[from, to)` as stored: index, bytes and leaf hash, in index order.
pub async fn bodies_for_write(
    tx: &mut WriteTx,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Vec<u8>, Vec<u8>)>> {
    let sql = "SELECT idx, entry, leaf_hash FROM audit_log WHERE idx >= $1 AND idx < $2 \
               ORDER BY idx";
    statement(sql).bind(from).bind(to).fetch_all(tx.run()).await
}

/// Records an archive run. It must precede [`clear_bodies`]: the guard trigger lets
/// bodies go only inside the newest run, in the transaction that appended its entry.
pub async fn insert_archive_run(tx: &mut WriteTx, run: &ArchiveRun) -> Result<()> {
    let sql = "INSERT INTO audit_archive (from_idx, to_idx, entry_idx, tree_size, ts, file) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    statement(sql)
        .bind(run.from_idx)
        .bind(run.to_idx)
        .bind(run.entry_idx)
        .bind(run.tree_size)
        .bind(run.ts)
        .bind(run.file.as_str())
        .execute(tx.run())
        .await?;
    Ok(())
}

/// Empties the bodies of entries `[from, to)` (an archive run's; see the guard trigger).
pub async fn clear_bodies(tx: &mut WriteTx, from: i64, to: i64) -> Result<()> {
    let sql = "UPDATE audit_log SET entry = $1 WHERE idx >= $2 AND idx < $3";
    statement(sql)
        .bind(Vec::<u8>::new())
        .bind(from)
        .bind(to)
        .execute(tx.run())
        .await?;
    Ok(())
}

/// The newest entry whose action column says `archive`, below `size`: (index, bytes).
pub async fn newest_archive_entry(db: &Db, size: i64) -> Result<Option<(i64, Vec<u8>)>> {
    let sql = newest_first(
        &["{t}action = 'archive'".to_owned(), "{t}idx < $1".to_owned()],
        "1",
        "l.idx, l.ts, l.entry",
    );
    let sql = format!("SELECT idx, entry FROM ({sql}) AS newest");
    let mut conn = db.reader().await?;
    statement(sql).bind(size).fetch_optional(conn.run()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_computed_node_spans_its_leaves_and_an_impossible_one_spans_none() {
        assert_eq!(span(1, 3), Some((6, 8)));
        assert_eq!(span(LOWEST_STORED - 1, 2), Some((256, 384)));
        // Ids from a bad proof request: past any log, so nothing is read for them.
        assert_eq!(span(7, u64::MAX), None);
        assert_eq!(span(1, u64::MAX / 2), None);
        assert_eq!(span(64, 0), None);
    }

    #[test]
    fn a_node_is_found_under_the_leaf_that_completes_it() {
        // Node 2/1 spans leaves 4..8, so leaf 7 completes it; leaf 6 completes none at 2.
        assert_eq!(completing_leaf(2, 1), 7);
        assert_eq!(completing_leaf(0, 9), 9);
        for level in 0..20u8 {
            for idx in [0u64, 1, 2, 5, 1000] {
                let leaf = i64::try_from(completing_leaf(level, idx)).unwrap();
                let node = node_at(leaf, i64::from(level), vec![7; 32]).unwrap();
                assert_eq!(node, (level, idx, [7; 32]));
            }
        }
        assert!(node_at(6, 2, vec![0; 32]).is_err());
        assert!(node_at(7, 2, vec![0; 31]).is_err());
        assert!(node_at(-1, 1, vec![0; 32]).is_err());
        assert!(node_at(7, 70, vec![0; 32]).is_err());
    }

    #[test]
    fn a_node_past_any_log_gets_a_key_no_row_has() {
        assert_eq!(completing_leaf(63, 5), u64::MAX - 1);
        assert_eq!(completing_leaf(200, 0), u64::MAX - 1);
        assert_eq!(completing_leaf(0, u64::MAX), u64::MAX - 1);
    }
}
