//! Sign-in state: browser sessions, API tokens, the failed sign-ins the lockout counts,
//! and idempotency keys. Secrets are kept only as SHA-256 hex digests.

use serde::Serialize;

use std::sync::LazyLock;

use super::records::Member;
use super::statement::FromCells;
use super::{CellKind, Db, Result, Run, SqlValue, WriteTx, statement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub record_type: String,
    pub record_id: i64,
    /// The notes revision a line added under the key made; none for a created record.
    pub revision: Option<i64>,
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

const SESSION_COLUMNS: &str = "user_id, csrf_token, created_at, last_seen_at, expires_at, ended_at";

type SessionCells = (i64, String, i64, i64, i64, Option<i64>);

impl SessionRow {
    fn from_cells(
        (user_id, csrf_token, created_at, last_seen_at, expires_at, ended_at): SessionCells,
    ) -> Self {
        Self {
            user_id,
            csrf_token,
            created_at,
            last_seen_at,
            expires_at,
            ended_at,
        }
    }
}

async fn session_in(run: Run<'_>, id_hash: &str) -> Result<Option<SessionRow>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE id_hash = $1"));
    let row: Option<SessionCells> = statement(SQL.as_str())
        .bind(id_hash)
        .fetch_optional(run)
        .await?;
    Ok(row.map(SessionRow::from_cells))
}

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, last_used_at, revoked_at";

type TokenCells = (i64, i64, String, i64, Option<i64>, Option<i64>);

impl TokenRow {
    fn from_cells((id, user_id, name, created_at, last_used_at, revoked_at): TokenCells) -> Self {
        Self {
            id,
            user_id,
            name,
            created_at,
            last_used_at,
            revoked_at,
        }
    }
}

async fn token_where(run: Run<'_>, column: &str, value: SqlValue) -> Result<Option<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE {column} = $1");
    let row: Option<TokenCells> = statement(sql).bind(value).fetch_optional(run).await?;
    Ok(row.map(TokenRow::from_cells))
}

/// A token with its user and the user's group: everything a bearer request is checked
/// against, in one statement.
pub async fn token_member(db: &Db, hash: &str) -> Result<Option<(TokenRow, Member)>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| member_sql(TOKEN_COLUMNS, "api_tokens", "token_hash"));
    let row = with_member::<TokenCells>(db, SQL.as_str(), hash).await?;
    Ok(row.map(|(cells, member)| (TokenRow::from_cells(cells), member)))
}

/// The channel PostgreSQL notifies when a change to a token (but its last use), a user
/// or a security group commits, whoever made it (migration 0014).
pub const ACCESS_CHANGED: &str = "keeptrack_access";

/// A connection of its own, listening on [`ACCESS_CHANGED`] once this returns; `None` on
/// SQLite, which has no such notices.
pub async fn hear_access_changes(db: &Db) -> Result<Option<sqlx::postgres::PgListener>> {
    let Db::Postgres(readers) = db else {
        return Ok(None);
    };
    let own = super::pg_pool(1).connect_lazy_with((*readers.connect_options()).clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.listen(ACCESS_CHANGED).await?;
    Ok(Some(listener))
}

/// A browser session with its user and the user's group, in one statement.
pub async fn session_member(db: &Db, id_hash: &str) -> Result<Option<(SessionRow, Member)>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| member_sql(SESSION_COLUMNS, "auth_sessions", "id_hash"));
    let row = with_member::<SessionCells>(db, SQL.as_str(), id_hash).await?;
    Ok(row.map(|(cells, member)| (SessionRow::from_cells(cells), member)))
}

/// Reads `columns` of the row of `table` whose `key` is `$1`, then its user's [`Member`].
fn member_sql(columns: &str, table: &str, key: &str) -> String {
    format!(
        "SELECT {}, {} FROM {table} x JOIN users u ON u.id = x.user_id {} WHERE x.{key} = $1",
        super::records::qualified(columns, "x"),
        Member::columns(),
        Member::JOIN
    )
}

/// The one row of `sql`: its leading cells as `T`, the rest as a [`Member`].
async fn with_member<T: FromCells>(
    db: &Db,
    sql: &'static str,
    key: &str,
) -> Result<Option<(T, Member)>> {
    let kinds: Vec<CellKind> = T::KINDS.iter().copied().chain(Member::kinds()).collect();
    let mut conn = db.reader().await?;
    let rows = statement(sql).bind(key).rows(conn.run(), &kinds).await?;
    let Some(mut cells) = rows.into_iter().next() else {
        return Ok(None);
    };
    let member = Member::decode(cells.split_off(T::KINDS.len()))?;
    Ok(Some((T::from_cells(cells)?, member)))
}

pub async fn token_by_id_for_write(tx: &mut WriteTx, id: i64) -> Result<Option<TokenRow>> {
    token_where(tx.run(), "id", id.into()).await
}

/// A user's tokens, newest first.
pub async fn tokens_of(db: &Db, user_id: i64) -> Result<Vec<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC");
    let mut conn = db.reader().await?;
    let rows: Vec<TokenCells> = statement(sql).bind(user_id).fetch_all(conn.run()).await?;
    Ok(rows.into_iter().map(TokenRow::from_cells).collect())
}

/// The times of the newest `limit` failures since `since` for a username, and for an IP.
pub async fn recent_failures(
    db: &Db,
    username: &str,
    ip: &str,
    since: i64,
    limit: i64,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut conn = db.reader().await?;
    Ok((
        failures(conn.run(), "username", username, since, limit).await?,
        failures(conn.run(), "ip", ip, since, limit).await?,
    ))
}

pub async fn recent_failures_for_write(
    tx: &mut WriteTx,
    username: &str,
    ip: &str,
    since: i64,
    limit: i64,
) -> Result<(Vec<i64>, Vec<i64>)> {
    Ok((
        failures(tx.run(), "username", username, since, limit).await?,
        failures(tx.run(), "ip", ip, since, limit).await?,
    ))
}

async fn failures(
    run: Run<'_>,
    column: &str,
    value: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let sql = format!(
        "SELECT ts FROM sign_in_failures WHERE {column} = $1 AND ts >= $2 \
         ORDER BY ts DESC LIMIT $3"
    );
    let rows: Vec<(i64,)> = statement(sql)
        .bind(value)
        .bind(since)
        .bind(limit)
        .fetch_all(run)
        .await?;
    Ok(rows.into_iter().map(|(ts,)| ts).collect())
}

pub async fn idempotency(db: &Db, user_id: i64, key: &str) -> Result<Option<IdempotencyRow>> {
    let mut conn = db.reader().await?;
    idempotency_in(conn.run(), user_id, key).await
}

pub async fn idempotency_for_write(
    tx: &mut WriteTx,
    user_id: i64,
    key: &str,
) -> Result<Option<IdempotencyRow>> {
    idempotency_in(tx.run(), user_id, key).await
}

async fn idempotency_in(run: Run<'_>, user_id: i64, key: &str) -> Result<Option<IdempotencyRow>> {
    let sql = "SELECT request_hash, record_type, record_id, revision FROM idempotency_keys \
               WHERE user_id = $1 AND key = $2";
    let row = statement(sql)
        .bind(user_id)
        .bind(key)
        .fetch_optional(run)
        .await?;
    Ok(row.map(
        |(request_hash, record_type, record_id, revision)| IdempotencyRow {
            request_hash,
            record_type,
            record_id,
            revision,
        },
    ))
}

// Writes: only the ledger holds a WriteTx.

pub async fn insert_session(tx: &mut WriteTx, s: &NewSession<'_>) -> Result<()> {
    let sql = "INSERT INTO auth_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, \
               expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7)";
    statement(sql)
        .bind(s.id_hash)
        .bind(s.user_id)
        .bind(s.csrf_token)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.ip)
        .bind(s.user_agent)
        .execute(tx.run())
        .await?;
    Ok(())
}

pub async fn session_for_write(tx: &mut WriteTx, id_hash: &str) -> Result<Option<SessionRow>> {
    session_in(tx.run(), id_hash).await
}

pub async fn touch_session(tx: &mut WriteTx, id_hash: &str, now: i64) -> Result<()> {
    let sql = "UPDATE auth_sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2";
    statement(sql)
        .bind(id_hash)
        .bind(now)
        .execute(tx.run())
        .await?;
    Ok(())
}

pub async fn end_session(tx: &mut WriteTx, id_hash: &str, now: i64) -> Result<bool> {
    let sql = "UPDATE auth_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL";
    let n = statement(sql)
        .bind(id_hash)
        .bind(now)
        .execute(tx.run())
        .await?;
    Ok(n > 0)
}

/// Ends every open session of a user (password changed, user deactivated).
pub async fn end_sessions_of(tx: &mut WriteTx, user_id: i64, now: i64) -> Result<u64> {
    let sql = "UPDATE auth_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL";
    statement(sql)
        .bind(user_id)
        .bind(now)
        .execute(tx.run())
        .await
}

pub async fn insert_token(
    tx: &mut WriteTx,
    user_id: i64,
    name: &str,
    hash: &str,
    now: i64,
) -> Result<i64> {
    let sql = "INSERT INTO api_tokens (user_id, name, token_hash, created_at) \
               VALUES ($1, $2, $3, $4) RETURNING id";
    statement(sql)
        .bind(user_id)
        .bind(name)
        .bind(hash)
        .bind(now)
        .scalar(tx.run())
        .await
}

pub async fn touch_token(tx: &mut WriteTx, id: i64, now: i64) -> Result<()> {
    let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
               AND (last_used_at IS NULL OR last_used_at < $2)";
    statement(sql).bind(id).bind(now).execute(tx.run()).await?;
    Ok(())
}

pub async fn revoke_token(tx: &mut WriteTx, id: i64, now: i64) -> Result<()> {
    let sql = "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    statement(sql).bind(id).bind(now).execute(tx.run()).await?;
    Ok(())
}

pub async fn insert_failure(tx: &mut WriteTx, username: &str, ip: &str, now: i64) -> Result<()> {
    let sql = "INSERT INTO sign_in_failures (ts, username, ip) VALUES ($1, $2, $3)";
    statement(sql)
        .bind(now)
        .bind(username)
        .bind(ip)
        .execute(tx.run())
        .await?;
    Ok(())
}

/// A successful sign-in clears the account's count (the log keeps the failures).
pub async fn clear_failures(tx: &mut WriteTx, username: &str) -> Result<()> {
    let sql = "DELETE FROM sign_in_failures WHERE username = $1";
    statement(sql).bind(username).execute(tx.run()).await?;
    Ok(())
}

pub async fn insert_idempotency(
    tx: &mut WriteTx,
    user_id: i64,
    key: &str,
    row: &IdempotencyRow,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO idempotency_keys (user_id, key, request_hash, record_type, record_id, \
               revision, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let write = statement(sql)
        .bind(user_id)
        .bind(key)
        .bind(row.request_hash.as_str())
        .bind(row.record_type.as_str())
        .bind(row.record_id)
        .bind(row.revision)
        .bind(now);
    // Nobody reads it back in this command: on PostgreSQL it goes with the next statement.
    tx.hold(write, "idempotency_keys").await
}
