//! Studio preferences: key → text value (audit switches, time zone, the log's origin).

use std::collections::BTreeMap;

use super::{Db, Result, Run, WriteTx, statement};

async fn read(run: Run<'_>) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = statement("SELECT key, value FROM preferences")
        .fetch_all(run)
        .await?;
    Ok(rows.into_iter().collect())
}

pub async fn all(db: &Db) -> Result<BTreeMap<String, String>> {
    let mut conn = db.reader().await?;
    read(conn.run()).await
}

pub async fn all_for_write(tx: &mut WriteTx) -> Result<BTreeMap<String, String>> {
    read(tx.run()).await
}

pub async fn set(tx: &mut WriteTx, key: &str, value: &str) -> Result<()> {
    let sql = "INSERT INTO preferences (key, value) VALUES ($1, $2) \
               ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    statement(sql)
        .bind(key)
        .bind(value)
        .execute(tx.run())
        .await?;
    Ok(())
}
