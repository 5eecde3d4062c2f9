//! **Bench only.** Fills the log fast: entries appended straight into its tables, as
//! another process's appends would leave them.

use std::{collections::HashMap, time::Instant};

use anyhow::{Result, ensure};
use keeptrack::{
    domain::{
        audit::{
            Action, Actor, ActorKind, Category, Entry, RecordRef, Request, SCHEMA_VERSION,
            leaf_hash,
        },
        diff::Change,
        merkle::Frontier,
        record::RecordKind,
    },
    store::{Db, audit_log},
};

use super::Rng;

/// Who the backfilled entries name as their actor.
pub struct Author {
    pub id: i64,
    pub initials: String,
    pub name: String,
}

/// One backdated entry, ready to store.
struct BackfillRow {
    idx: i64,
    ts: i64,
    actor_id: i64,
    record_id: i64,
    /// The client's previous entry: its link in the record chain.
    prev: Option<i64>,
    bytes: Vec<u8>,
    hash: [u8; 32],
}

/// **Bench only.** Appends `n` backdated entries (client email or phone changes with a
/// reason, by random users, over random clients) straight into the log's tables,
/// `audit_log`, `audit_tree` and `log_head`, exactly as an append by another process
/// would leave them: canonical bytes, leaf hashes, the Merkle nodes they complete and the
/// head's new size and root. The ledger cannot write them, because it stamps every entry
/// with the current clock; a year of history written in minutes needs timestamps it
/// would never give. Nothing in `src/` changes: the ledger must be idle meanwhile (each
/// transaction checks that the head did not move), and it picks the new head up at its
/// next batch as it would another process's appends.
///
/// The entries' timestamps rise with their index and spread evenly over `span` (µs). A
/// span that ends before the log's last entry leaves the log's times not monotonic at
/// that seam (a warning in `audit verify`, nothing worse).
pub async fn backfill_backdated_entries(
    db: &Db,
    users: &[Author],
    clients: &[(i64, String)],
    n: usize,
    span: (i64, i64),
    rng: &mut Rng,
) -> Result<()> {
    const PER_TRANSACTION: usize = 20_000;
    let (size, _) = audit_log::head(db).await?;
    let size_u = u64::try_from(size)?;
    let ids = Frontier::node_ids(size_u);
    let stored: HashMap<(u8, u64), [u8; 32]> = audit_log::nodes(db, &ids)
        .await?
        .into_iter()
        .map(|(l, i, h)| ((l, i), h))
        .collect();
    ensure!(
        ids.iter().all(|id| stored.contains_key(id)),
        "the log's tree does not cover its {size} entries"
    );
    let mut frontier = Frontier::from_nodes(size_u, |l, i| stored[&(l, i)]);
    let origin: String = match db {
        Db::Sqlite(p, _) => {
            sqlx::query_scalar("SELECT value FROM preferences WHERE key = 'log.origin'")
                .fetch_one(p)
                .await?
        }
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT value FROM preferences WHERE key = 'log.origin'")
                .fetch_one(p)
                .await?
        }
    };
    // Each client's newest entry, to link the next one to, as the ledger does.
    let heads_sql = "SELECT record_id, head FROM audit_heads WHERE record_type = 'client'";
    let mut heads: HashMap<i64, i64> = match db {
        Db::Sqlite(p, _) => sqlx::query_as(heads_sql).fetch_all(p).await?,
        Db::Postgres(p) => sqlx::query_as(heads_sql).fetch_all(p).await?,
    }
    .into_iter()
    .collect();
    let (lo, hi) = span;
    let step = ((hi - lo) / n.max(1) as i64).max(1);
    let started = Instant::now();
    let mut idx = size;
    let mut done = 0;
    while done < n {
        let count = PER_TRANSACTION.min(n - done);
        let first = idx;
        let mut rows = Vec::with_capacity(count);
        let mut nodes = Vec::with_capacity(count * 2);
        for k in done..done + count {
            let user = rng.pick(users);
            let (client, label) = rng.pick(clients);
            let (field, old, new) = if rng.below(10) < 7 {
                (
                    "email",
                    format!("c{client}.{k}@example.com"),
                    format!("c{client}.{}@example.com", k + 1),
                )
            } else {
                (
                    "phone",
                    format!("555-{:04}", rng.below(10_000)),
                    format!("555-{:04}", rng.below(10_000)),
                )
            };
            let entry = Entry {
                v: SCHEMA_VERSION,
                log: origin.clone(),
                i: idx,
                ts: lo + k as i64 * step + rng.below(step as u64) as i64,
                cat: Category::Clients,
                act: Action::Update,
                actor: Actor {
                    kind: ActorKind::User,
                    id: Some(user.id),
                    initials: user.initials.clone(),
                    name: user.name.clone(),
                },
                auth: None,
                rec: Some(RecordRef {
                    kind: RecordKind::Client.as_str().to_owned(),
                    id: *client,
                    label: label.clone(),
                }),
                diff: vec![Change {
                    field: field.into(),
                    old: old.into(),
                    new: new.into(),
                }],
                snap: None,
                note: None,
                comm: None,
                sec: None,
                reason: Some("The client asked for it on the phone".into()),
                req: Some(Request {
                    id: Some(format!("{:024x}", rng.next_u64())),
                    ip: Some(format!("192.0.2.{}", 1 + rng.below(200))),
                    ua: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
                }),
            };
            let bytes = entry.to_canonical_bytes();
            let hash = leaf_hash(&bytes);
            nodes.extend(
                frontier
                    .push(hash)
                    .into_iter()
                    .filter(|n| n.0 >= audit_log::LOWEST_STORED),
            );
            rows.push(BackfillRow {
                idx,
                ts: entry.ts,
                actor_id: user.id,
                record_id: *client,
                prev: heads.insert(*client, idx),
                bytes,
                hash,
            });
            idx += 1;
        }
        write_backfill(db, first, &rows, &nodes, idx, &frontier.root()).await?;
        done += count;
        if done % 200_000 < PER_TRANSACTION || done == n {
            eprintln!(
                "    ... backfilled {done} of {n} ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The VALUES of `rows` rows of `cols` columns: `$1, $2, ...` for PostgreSQL, `?` for
/// SQLite, where sqlx maps each `$N` by looking through every parameter's name (quadratic
/// in a statement of thousands of parameters).
fn placeholders(rows: usize, cols: usize, numbered: bool) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            if numbered {
                s.push('$');
                s.push_str(&(r * cols + c + 1).to_string());
            } else {
                s.push('?');
            }
        }
        s.push(')');
    }
    s
}

/// The statements of one backfill transaction, for either backend's transaction `$tx`.
macro_rules! backfill_statements {
    ($tx:ident, $numbered:expr, $first:expr, $rows:expr, $nodes:expr, $size:expr, $root:expr) => {{
        let size: i64 = sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
            .fetch_one(&mut *$tx)
            .await?;
        ensure!(
            size == $first,
            "the log moved during the backfill ({size}, expected {}): is the ledger idle?",
            $first
        );
        for chunk in $rows.chunks(1000) {
            let sql = format!(
                "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, \
                 record_type, record_id, entry, leaf_hash, prev_idx) VALUES {}",
                placeholders(chunk.len(), 11, $numbered)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.idx)
                    .bind(r.ts)
                    .bind(Category::Clients.as_str())
                    .bind(Action::Update.as_str())
                    .bind(ActorKind::User.as_str())
                    .bind(r.actor_id)
                    .bind(RecordKind::Client.as_str())
                    .bind(r.record_id)
                    .bind(r.bytes.as_slice())
                    .bind(r.hash.as_slice())
                    .bind(r.prev);
            }
            q.execute(&mut *$tx).await?;
        }
        // The clients' heads, as the ledger moves them with its entries: on SQLite a
        // column of the client's row, on PostgreSQL a table of heads.
        let heads = if $numbered {
            "INSERT INTO audit_heads (record_type, record_id, head) \
             SELECT record_type, record_id, MAX(idx) FROM audit_log WHERE idx >= $1 \
             GROUP BY record_type, record_id \
             ON CONFLICT (record_type, record_id) DO UPDATE SET head = excluded.head"
        } else {
            "UPDATE clients SET audit_head = n.head FROM (SELECT record_id, MAX(idx) AS head \
             FROM audit_log WHERE idx >= $1 GROUP BY record_id) AS n \
             WHERE clients.id = n.record_id"
        };
        sqlx::query(heads).bind($first).execute(&mut *$tx).await?;
        // The keys queries use, as the writer would copy them a few hundred at a time.
        sqlx::query(
            "INSERT INTO audit_keys (idx, ts, category, action, actor_id, record_type, \
             record_id) SELECT idx, ts, category, action, actor_id, record_type, record_id \
             FROM audit_log WHERE idx > (SELECT COALESCE(MAX(idx), -1) FROM audit_keys)",
        )
        .execute(&mut *$tx)
        .await?;
        for chunk in $nodes.chunks(2000) {
            let sql = format!(
                "INSERT INTO audit_tree (leaf, level, hash) VALUES {}",
                placeholders(chunk.len(), 3, $numbered)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (level, i, hash) in chunk {
                q = q
                    .bind(i64::try_from(audit_log::completing_leaf(*level, *i))?)
                    .bind(i64::from(*level))
                    .bind(hash.as_slice());
            }
            q.execute(&mut *$tx).await?;
        }
        sqlx::query("UPDATE log_head SET size = $1, root = $2 WHERE id = 1")
            .bind($size)
            .bind($root.as_slice())
            .execute(&mut *$tx)
            .await?;
    }};
}

/// One backfill transaction, holding the same single-writer lock as the ledger's
/// `WriteTx`: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's row lock on `log_head`.
async fn write_backfill(
    db: &Db,
    first: i64,
    rows: &[BackfillRow],
    nodes: &[audit_log::Node],
    size: i64,
    root: &[u8; 32],
) -> Result<()> {
    match db {
        Db::Sqlite(p, _) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            backfill_statements!(tx, false, first, rows, nodes, size, root);
            tx.commit().await?;
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("SELECT size FROM log_head WHERE id = 1 FOR UPDATE")
                .execute(&mut *tx)
                .await?;
            backfill_statements!(tx, true, first, rows, nodes, size, root);
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Settles what a bulk write left behind, as slow growth would have: PostgreSQL's vacuum,
/// statistics and checkpoint, SQLite's WAL checkpoint. Otherwise the first measurements
/// after a backfill pay for it.
pub async fn settle(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        Db::Postgres(p) => {
            sqlx::query("VACUUM ANALYZE").execute(p).await?;
            sqlx::query("CHECKPOINT").execute(p).await?;
        }
        Db::Sqlite(p, _) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await?;
        }
    }
    Ok(())
}
