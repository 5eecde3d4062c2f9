//! Entries of the configurable lists (statuses, types, payment methods).

use serde::Serialize;

use super::{Db, Result, Run, WriteTx, on_conn, statement};
use crate::domain::list::ListKind;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListItem {
    pub id: i64,
    pub list: ListKind,
    pub name: String,
    pub position: i64,
    pub active: bool,
    pub minutes: Option<i64>,
    pub days: Option<i64>,
}

type Row = (i64, String, String, i64, bool, Option<i64>, Option<i64>);

const SELECT: &str = "SELECT id, list, name, position, active, minutes, days FROM list_items";

fn item(row: Row) -> Option<ListItem> {
    let (id, list, name, position, active, minutes, days) = row;
    Some(ListItem {
        id,
        list: ListKind::parse(&list)?,
        name,
        position,
        active,
        minutes,
        days,
    })
}

/// Every entry of every list, in list and display order.
pub async fn all(db: &Db) -> Result<Vec<ListItem>> {
    let sql = format!("{SELECT} ORDER BY list, position, id");
    let mut conn = db.acquire().await?;
    let rows: Vec<Row> = on_conn!(conn.conn(), c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await?);
    Ok(rows.into_iter().filter_map(item).collect())
}

pub async fn items(db: &Db, list: ListKind) -> Result<Vec<ListItem>> {
    Ok(all(db)
        .await?
        .into_iter()
        .filter(|i| i.list == list)
        .collect())
}

/// One entry, read inside the writer's transaction.
pub async fn get_for_write(tx: &mut WriteTx, id: i64) -> Result<Option<ListItem>> {
    let sql = format!("{SELECT} WHERE id = $1");
    let row: Option<Row> = statement(sql).bind(id).fetch_optional(tx.run()).await?;
    Ok(row.and_then(item))
}

pub(crate) async fn is_active(run: Run<'_>, list: ListKind, id: i64) -> Result<bool> {
    let sql = "SELECT COUNT(*) FROM list_items WHERE id = $1 AND list = $2 AND active";
    let n: i64 = statement(sql)
        .bind(id)
        .bind(list.as_str())
        .scalar(run)
        .await?;
    Ok(n > 0)
}

/// Adds the default entries a new studio starts with; entries that exist are left alone.
pub async fn seed_defaults(tx: &mut WriteTx) -> Result<()> {
    let sql = "INSERT INTO list_items (list, name, position, active, minutes, days) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (list, name) DO NOTHING";
    for list in ListKind::ALL {
        for (position, d) in (1_i64..).zip(list.defaults()) {
            statement(sql)
                .bind(list.as_str())
                .bind(d.name)
                .bind(position)
                .bind(true)
                .bind(d.minutes)
                .bind(d.days)
                .execute(tx.run())
                .await?;
        }
    }
    Ok(())
}

/// The first active entry of a list, in display order: the default a new record gets.
pub async fn first_active(tx: &mut WriteTx, list: ListKind) -> Result<Option<ListItem>> {
    let sql = format!("{SELECT} WHERE list = $1 AND active ORDER BY position, id LIMIT 1");
    let row: Option<Row> = statement(sql)
        .bind(list.as_str())
        .fetch_optional(tx.run())
        .await?;
    Ok(row.and_then(item))
}
