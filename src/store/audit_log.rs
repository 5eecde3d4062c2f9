//! The audit log's tables: entries (their canonical bytes plus indexed copies of a few
//! fields for queries) and the head (size). Entries are only ever appended.

use serde::Serialize;

use super::{Db, Result, SqlValue, WriteTx, bind_all, on_conn, trusted};

/// What the ledger appends: the bytes, their leaf hash, and the columns queries use.
pub struct NewEntry<'a> {
    pub idx: i64,
    pub ts: i64,
    pub category: &'a str,
    pub action: &'a str,
    pub actor_kind: &'a str,
    pub actor_id: Option<i64>,
    pub record_type: Option<&'a str>,
    pub record_id: Option<i64>,
    pub bytes: &'a [u8],
    pub leaf_hash: &'a [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub idx: i64,
    pub ts: i64,
    pub bytes: Vec<u8>,
}

/// The number of entries, under the writer's lock.
pub async fn head_size(tx: &mut WriteTx) -> Result<i64> {
    on_conn!(tx.conn(), c => Ok(sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
        .fetch_one(&mut *c).await?))
}

pub async fn set_head_size(tx: &mut WriteTx, size: i64) -> Result<()> {
    on_conn!(tx.conn(), c => sqlx::query("UPDATE log_head SET size = $1 WHERE id = 1")
        .bind(size).execute(&mut *c).await.map(|_| ())?);
    Ok(())
}

pub async fn append(tx: &mut WriteTx, e: &NewEntry<'_>) -> Result<()> {
    let sql = "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, \
               record_type, record_id, entry, leaf_hash) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    on_conn!(tx.conn(), c => sqlx::query(sql)
        .bind(e.idx).bind(e.ts).bind(e.category).bind(e.action).bind(e.actor_kind)
        .bind(e.actor_id).bind(e.record_type).bind(e.record_id)
        .bind(e.bytes).bind(e.leaf_hash.as_slice())
        .execute(&mut *c).await.map(|_| ())?);
    Ok(())
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
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut add = |clause: &str, v: SqlValue| {
        values.push(v);
        clauses.push(clause.replace('?', &format!("${}", values.len())));
    };
    if let Some(v) = f.from_ts {
        add("ts >= ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = f.to_ts {
        add("ts < ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = f.actor_id {
        add("actor_id = ?", SqlValue::Int(Some(v)));
    }
    if let Some(v) = &f.category {
        add("category = ?", SqlValue::Text(Some(v.clone())));
    }
    if let Some(v) = &f.action {
        add("action = ?", SqlValue::Text(Some(v.clone())));
    }
    if let Some(v) = &f.record_type {
        add("record_type = ?", SqlValue::Text(Some(v.clone())));
    }
    if let Some(v) = f.record_id {
        add("record_id = ?", SqlValue::Int(Some(v)));
    }
    if let Some((ts, idx)) = f.before {
        values.push(SqlValue::Int(Some(ts)));
        values.push(SqlValue::Int(Some(idx)));
        clauses.push(format!(
            "(ts < ${a} OR (ts = ${a} AND idx < ${b}))",
            a = values.len() - 1,
            b = values.len()
        ));
    }
    values.push(SqlValue::Int(Some(f.limit)));
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT idx, ts, entry FROM audit_log {filter} ORDER BY ts DESC, idx DESC LIMIT ${}",
        values.len()
    );
    let mut conn = db.acquire().await?;
    let rows: Vec<(i64, i64, Vec<u8>)> = on_conn!(conn.conn(), c =>
        bind_all(sqlx::query(trusted(sql)), values).fetch_all(&mut *c).await?
            .iter()
            .map(|r| Ok((sqlx::Row::try_get(r, 0)?, sqlx::Row::try_get(r, 1)?, sqlx::Row::try_get(r, 2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
    Ok(rows
        .into_iter()
        .map(|(idx, ts, bytes)| StoredEntry { idx, ts, bytes })
        .collect())
}
