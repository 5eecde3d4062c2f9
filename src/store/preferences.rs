//! Studio preferences: key → text value (audit switches, time zone, the log's origin).

use std::collections::BTreeMap;

use super::{Conn, Db, Result, WriteTx, on_conn};

async fn read(conn: Conn<'_>) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = on_conn!(conn, c =>
        sqlx::query_as("SELECT key, value FROM preferences").fetch_all(&mut *c).await?);
    Ok(rows.into_iter().collect())
}

pub async fn all(db: &Db) -> Result<BTreeMap<String, String>> {
    let mut conn = db.acquire().await?;
    read(conn.conn()).await
}

pub async fn all_for_write(tx: &mut WriteTx) -> Result<BTreeMap<String, String>> {
    read(tx.conn()).await
}

pub async fn set(tx: &mut WriteTx, key: &str, value: &str) -> Result<()> {
    let sql = "INSERT INTO preferences (key, value) VALUES ($1, $2) \
               ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    on_conn!(tx.conn(), c => sqlx::query(sql).bind(key).bind(value).execute(&mut *c).await.map(|_| ())?);
    Ok(())
}
