//! One SQL statement and its arguments, run the same way on every connection the store
//! has: the pool's (sqlx, SQLite or PostgreSQL) and the SQLite connections it calls
//! directly, the writer's and the readers'.
//!
//! Those are called on the caller's own thread: sqlx hands every statement to a
//! connection thread and back, and an audited write is about ten statements, so on
//! SQLite that hand-over cost more than the statements themselves.

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{CellKind, Conn, Error, Result, SqlValue, bind_all, cell, on_conn, trusted};

/// Where a statement runs.
pub(crate) enum Run<'c> {
    Sqlx(Conn<'c>),
    /// A writer's transaction through sqlx, which adds the rows each statement inserts,
    /// updates or deletes to the count (see [`super::WriteTx::rows_written`]).
    Counted(Conn<'c>, &'c mut u64),
    /// An SQLite connection called directly: the writer's (see [`super::WriteConn`]) or
    /// a reader's (see [`super::Readers`]).
    Direct(&'c Mutex<rusqlite::Connection>),
}

/// SQL written once for both databases (`$n` binds), with its arguments.
#[must_use]
pub(crate) struct Statement {
    sql: Cow<'static, str>,
    args: Vec<SqlValue>,
}

pub(crate) fn statement(sql: impl Into<Cow<'static, str>>) -> Statement {
    Statement {
        sql: sql.into(),
        args: Vec::new(),
    }
}

impl Statement {
    /// Binds the next `$n`.
    pub(crate) fn bind(mut self, value: impl Into<SqlValue>) -> Self {
        self.args.push(value.into());
        self
    }

    pub(crate) fn bind_all(mut self, values: impl IntoIterator<Item = SqlValue>) -> Self {
        self.args.extend(values);
        self
    }

    /// Runs it; how many rows it changed.
    pub(crate) async fn execute(self, run: Run<'_>) -> Result<u64> {
        Ok(self.run(run, &[]).await?.0)
    }

    /// Its rows, each read as the cells `kinds` name.
    pub(crate) async fn rows(self, run: Run<'_>, kinds: &[CellKind]) -> Result<Vec<Vec<SqlValue>>> {
        Ok(self.run(run, kinds).await?.1)
    }

    pub(crate) async fn fetch_all<T: FromCells>(self, run: Run<'_>) -> Result<Vec<T>> {
        let rows = self.rows(run, T::KINDS).await?;
        rows.into_iter().map(T::from_cells).collect()
    }

    pub(crate) async fn fetch_optional<T: FromCells>(self, run: Run<'_>) -> Result<Option<T>> {
        let rows = self.rows(run, T::KINDS).await?;
        rows.into_iter().next().map(T::from_cells).transpose()
    }

    pub(crate) async fn fetch_one<T: FromCells>(self, run: Run<'_>) -> Result<T> {
        let sql = self.sql.clone();
        self.fetch_optional(run)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("no row from {sql}")))
    }

    /// The single value of its single row.
    pub(crate) async fn scalar<T: Cell>(self, run: Run<'_>) -> Result<T> {
        Ok(self.fetch_one::<(T,)>(run).await?.0)
    }

    async fn run(self, run: Run<'_>, kinds: &[CellKind]) -> Result<(u64, Vec<Vec<SqlValue>>)> {
        match run {
            Run::Direct(conn) => direct(conn, &self.sql, &self.args, kinds),
            Run::Sqlx(conn) => self.sqlx(conn, kinds).await,
            Run::Counted(conn, written) => {
                let writes = self.writes();
                let (changed, rows) = self.sqlx(conn, kinds).await?;
                if writes {
                    // A statement with RETURNING answers one row per row it changed.
                    *written += changed.max(rows.len() as u64);
                }
                Ok((changed, rows))
            }
        }
    }

    async fn sqlx(self, conn: Conn<'_>, kinds: &[CellKind]) -> Result<(u64, Vec<Vec<SqlValue>>)> {
        on_conn!(conn, c => {
            let query = bind_all(sqlx::query(trusted(self.sql.into_owned())), self.args);
            if kinds.is_empty() {
                Ok((query.execute(&mut *c).await?.rows_affected(), Vec::new()))
            } else {
                let rows = query.fetch_all(&mut *c).await?;
                let rows = rows
                    .iter()
                    .map(|row| (0..kinds.len()).map(|i| cell(row, i, kinds[i])).collect())
                    .collect::<Result<_>>()?;
                Ok((0, rows))
            }
        })
    }

    /// Whether it changes rows (its count of rows is then of rows changed, not read).
    fn writes(&self) -> bool {
        let verb = self.sql.trim_start().get(..6).unwrap_or_default();
        ["INSERT", "UPDATE", "DELETE"]
            .iter()
            .any(|v| verb.eq_ignore_ascii_case(v))
    }
}

/// Runs a statement on the writer's SQLite connection, from a statement prepared once.
fn direct(
    conn: &Mutex<rusqlite::Connection>,
    sql: &str,
    args: &[SqlValue],
    kinds: &[CellKind],
) -> Result<(u64, Vec<Vec<SqlValue>>)> {
    let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
    let mut st = conn.prepare_cached(sql)?;
    // `$n` is SQLite's named parameter "$n", numbered by first appearance: bind by name.
    for i in 1..=st.parameter_count() {
        let n = st
            .parameter_name(i)
            .and_then(|name| name.get(1..)?.parse::<usize>().ok())
            .unwrap_or(i);
        let arg = args
            .get(n.wrapping_sub(1))
            .ok_or_else(|| Error::Corrupt(format!("no argument ${n} for {sql}")))?;
        st.raw_bind_parameter(i, arg)?;
    }
    if kinds.is_empty() {
        return Ok((st.raw_execute()? as u64, Vec::new()));
    }
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let cells = (0..kinds.len())
            .map(|i| direct_cell(row.get_ref(i)?, kinds[i]))
            .collect::<Result<_>>()?;
        out.push(cells);
    }
    Ok((0, out))
}

fn direct_cell(value: ValueRef<'_>, kind: CellKind) -> Result<SqlValue> {
    let wrong = || Error::Corrupt(format!("a {kind:?} column holds {:?}", value.data_type()));
    Ok(match (kind, value) {
        (CellKind::Int, ValueRef::Null) => SqlValue::Int(None),
        (CellKind::Int, ValueRef::Integer(v)) => SqlValue::Int(Some(v)),
        (CellKind::Text, ValueRef::Null) => SqlValue::Text(None),
        (CellKind::Text, ValueRef::Text(t)) => {
            SqlValue::Text(Some(String::from_utf8(t.to_vec()).map_err(|_| wrong())?))
        }
        (CellKind::Bool, ValueRef::Integer(v)) => SqlValue::Bool(v != 0),
        (CellKind::Bytes, ValueRef::Null) => SqlValue::Bytes(None),
        // As sqlx and SQLite's own `sqlite3_column_blob` read a TEXT value as bytes.
        (CellKind::Bytes, ValueRef::Blob(b) | ValueRef::Text(b)) => {
            SqlValue::Bytes(Some(b.to_vec()))
        }
        _ => return Err(wrong()),
    })
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Int(Some(v)) => ValueRef::Integer(*v),
            Self::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Self::Bool(v) => ValueRef::Integer(i64::from(*v)),
            Self::Bytes(Some(v)) => ValueRef::Blob(v),
            Self::Int(None) | Self::Text(None) | Self::Bytes(None) => ValueRef::Null,
        }))
    }
}

/// A Rust value one column reads as.
pub(crate) trait Cell: Sized {
    const KIND: CellKind;
    fn from_value(value: SqlValue) -> Result<Self>;
}

fn unexpected(value: &SqlValue) -> Error {
    Error::Corrupt(format!("unexpected column value {value:?}"))
}

macro_rules! cell_type {
    ($ty:ty, $kind:ident, $variant:ident, $some:pat => $v:expr) => {
        impl Cell for $ty {
            const KIND: CellKind = CellKind::$kind;
            fn from_value(value: SqlValue) -> Result<Self> {
                match value {
                    SqlValue::$variant($some) => Ok($v),
                    other => Err(unexpected(&other)),
                }
            }
        }
    };
}

cell_type!(i64, Int, Int, Some(v) => v);
cell_type!(Option<i64>, Int, Int, v => v);
cell_type!(String, Text, Text, Some(v) => v);
cell_type!(Option<String>, Text, Text, v => v);
cell_type!(bool, Bool, Bool, v => v);
cell_type!(Vec<u8>, Bytes, Bytes, Some(v) => v);
cell_type!(Option<Vec<u8>>, Bytes, Bytes, v => v);

/// A row read as a tuple of [`Cell`]s.
pub(crate) trait FromCells: Sized {
    const KINDS: &'static [CellKind];
    fn from_cells(cells: Vec<SqlValue>) -> Result<Self>;
}

macro_rules! tuple_row {
    ($($t:ident),+) => {
        impl<$($t: Cell),+> FromCells for ($($t,)+) {
            const KINDS: &'static [CellKind] = &[$($t::KIND),+];
            fn from_cells(cells: Vec<SqlValue>) -> Result<Self> {
                let mut cells = cells.into_iter();
                Ok(($($t::from_value(
                    cells.next().ok_or_else(|| Error::Corrupt("a row is short".into()))?,
                )?,)+))
            }
        }
    };
}

tuple_row!(A);
tuple_row!(A, B);
tuple_row!(A, B, C);
tuple_row!(A, B, C, D);
tuple_row!(A, B, C, D, E);
tuple_row!(A, B, C, D, E, F);
tuple_row!(A, B, C, D, E, F, G);
tuple_row!(A, B, C, D, E, F, G, H);
tuple_row!(A, B, C, D, E, F, G, H, I);
tuple_row!(A, B, C, D, E, F, G, H, I, J);
tuple_row!(A, B, C, D, E, F, G, H, I, J, K);
tuple_row!(A, B, C, D, E, F, G, H, I, J, K, L);

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}
impl From<Option<&str>> for SqlValue {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        Self::Bytes(Some(v.to_vec()))
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(Some(v))
    }
}
