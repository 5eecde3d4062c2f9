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

use super::{
    CellKind, Conn, Error, Lock, Result, SqlValue, bind_all, cell, on_conn, take_late_lock, trusted,
};

/// Where a statement runs.
pub(crate) enum Run<'c> {
    Sqlx(Conn<'c>),
    /// A writer's transaction through sqlx, which adds the rows each statement inserts,
    /// updates or deletes to the count (see [`super::WriteTx::rows_written`]), and on
    /// PostgreSQL sends the writes it holds back along with the statement (see [`Held`]).
    /// On PostgreSQL it first takes the log's lock, if the transaction began late (see
    /// [`super::WriteTx::begin_late`]).
    Counted(
        Conn<'c>,
        &'c mut u64,
        Option<&'c mut Held>,
        Option<&'c mut Lock>,
    ),
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

    pub(crate) fn sql(&self) -> &str {
        &self.sql
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
            Run::Counted(mut conn, written, held, lock) => {
                if let Some(lock) = lock
                    && let Lock::Late(count) = *lock
                    && let Conn::Postgres(c) = conn.reborrow()
                {
                    // Taken or not, the transaction is no longer one to commit late.
                    *lock = Lock::Taken;
                    take_late_lock(c, count).await?;
                }
                let writes = self.writes();
                let this = match held {
                    Some(held) if held.touches(&self.sql) => {
                        if let Some(first) = held.take() {
                            first.sqlx(conn.reborrow(), &[]).await?;
                        }
                        self
                    }
                    Some(held) => held.join(self),
                    None => self,
                };
                let (changed, rows) = this.sqlx(conn, kinds).await?;
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

/// Writes held back on PostgreSQL until the transaction's next statement, which takes
/// them along as data-modifying `WITH` parts: there every statement is a round trip, and
/// a write whose answer nobody reads (a record's update whose row the writer already
/// knows, a reason stamped into the notes, a status note) need not cost one of its own.
/// All the parts of a statement see one snapshot, so a statement that names a held
/// write's table would not see that write: the held writes then go first, in a
/// statement of their own.
#[derive(Default)]
pub(crate) struct Held {
    parts: Vec<Part>,
}

/// One `WITH` part of what is held.
enum Part {
    /// A write of its own, to this table.
    One(Statement, &'static str),
    Rows(Rows),
}

impl Part {
    fn table(&self) -> &'static str {
        match self {
            Self::One(_, table) => table,
            Self::Rows(rows) => rows.table,
        }
    }
}

/// Writes of one shape to one table, each to what one key names (a record's row, a
/// record's notes), held as the rows of a single statement whose every `$n` is one column
/// of them, as an array (`unnest($1::bigint[], ...)`). Its text is then the same however
/// many writes it carries, so PostgreSQL keeps it prepared. No two of them name one key,
/// so none reads what another writes.
struct Rows {
    sql: Cow<'static, str>,
    table: &'static str,
    keys: Vec<Key>,
    rows: Vec<Vec<SqlValue>>,
}

/// What a write of [`Rows`] reads and writes within its table: a kind and an id.
pub(crate) type Key = (&'static str, i64);

/// The statement of a write of [`Rows`]: `sql` takes each column as an array and writes
/// to `table` only what its row's [`Key`] names.
pub(crate) struct Shape {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) table: &'static str,
}

impl Held {
    /// Holds `write`, which writes to `table`. What it reads must have been written
    /// before the writes held already, or by none of them (see [`Held::touches`]).
    pub(crate) fn hold(&mut self, write: Statement, table: &'static str) {
        self.parts.push(Part::One(write, table));
    }

    /// Holds one write of `shape`, with its columns' values. It must not clash with
    /// what is held (see [`Held::clashes`]).
    pub(crate) fn hold_row(&mut self, shape: Shape, key: Key, row: Vec<SqlValue>) {
        let same = self.parts.iter_mut().find_map(|part| match part {
            Part::Rows(rows) if rows.sql == shape.sql => Some(rows),
            _ => None,
        });
        match same {
            Some(rows) => {
                rows.keys.push(key);
                rows.rows.push(row);
            }
            None => self.parts.push(Part::Rows(Rows {
                sql: shape.sql,
                table: shape.table,
                keys: vec![key],
                rows: vec![row],
            })),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether `sql` names a table a held write writes to.
    pub(crate) fn touches(&self, sql: &str) -> bool {
        self.parts.iter().any(|part| names(sql, part.table()))
    }

    /// Whether a write of `shape` to what `key` names would read or write what a held
    /// write writes: held rows of its table with the same key, or any other held write
    /// to a table it names.
    pub(crate) fn clashes(&self, shape: &Shape, key: Key) -> bool {
        self.parts.iter().any(|part| match part {
            Part::Rows(rows) if rows.table == shape.table => rows.keys.contains(&key),
            part => names(&shape.sql, part.table()),
        })
    }

    /// `then` with the held writes as `WITH` parts before it; nothing is held after.
    pub(crate) fn join(&mut self, then: Statement) -> Statement {
        if self.parts.is_empty() {
            return then;
        }
        let (parts, mut args) = self.drain();
        let rest = shift_binds(&then.sql, args.len());
        args.extend(then.args);
        let sql = match rest.trim_start().strip_prefix("WITH ") {
            Some(more) => format!("WITH {parts}, {more}"),
            None => format!("WITH {parts} {rest}"),
        };
        Statement {
            sql: sql.into(),
            args,
        }
    }

    /// The held writes as a statement of their own, if any; nothing is held after.
    pub(crate) fn take(&mut self) -> Option<Statement> {
        if self.parts.is_empty() {
            return None;
        }
        let (parts, args) = self.drain();
        Some(Statement {
            sql: format!("WITH {parts} SELECT 1").into(),
            args,
        })
    }

    /// The held writes as `WITH` parts, their binds numbered one after another, and
    /// their arguments in that order.
    fn drain(&mut self) -> (String, Vec<SqlValue>) {
        let mut parts = Vec::with_capacity(self.parts.len());
        let mut args = Vec::new();
        for (i, part) in self.parts.drain(..).enumerate() {
            let (sql, values) = match part {
                Part::One(write, _) => (write.sql, write.args),
                Part::Rows(rows) => (rows.sql, columns(rows.rows)),
            };
            parts.push(format!(
                "kt_held_{i} AS ({})",
                shift_binds(&sql, args.len())
            ));
            args.extend(values);
        }
        (parts.join(", "), args)
    }
}

/// Rows as their columns, each a list of the kind of its first value.
fn columns(rows: Vec<Vec<SqlValue>>) -> Vec<SqlValue> {
    let kinds: Vec<CellKind> = rows.first().map_or(Vec::new(), |row| {
        row.iter()
            .map(|value| match value {
                SqlValue::Text(_) => CellKind::Text,
                SqlValue::Bool(_) => CellKind::Bool,
                SqlValue::Bytes(_) | SqlValue::List(..) => CellKind::Bytes,
                SqlValue::Int(_) => CellKind::Int,
            })
            .collect()
    });
    lists(&kinds, rows.into_iter().flatten())
}

/// Values given row by row, one value of each of `kinds` to a row, as one list per
/// column: a list for each kind even when there are no rows.
pub(crate) fn lists(kinds: &[CellKind], values: impl Iterator<Item = SqlValue>) -> Vec<SqlValue> {
    let mut columns: Vec<Vec<SqlValue>> = vec![Vec::new(); kinds.len()];
    for (i, value) in values.enumerate() {
        columns[i % kinds.len()].push(value);
    }
    kinds
        .iter()
        .zip(columns)
        .map(|(kind, column)| SqlValue::List(*kind, column))
        .collect()
}

/// Whether `sql` names `table` as a whole word.
fn names(sql: &str, table: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    sql.match_indices(table).any(|(at, _)| {
        !word(sql[..at].chars().next_back()) && !word(sql[at + table.len()..].chars().next())
    })
}

/// `sql` with every `$n` outside a quoted string made `$(n + by)`.
fn shift_binds(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '\'' {
            quoted = !quoted;
        } else if c == '$' && !quoted {
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            match digits.parse::<usize>() {
                Ok(n) => out.push_str(&(n + by).to_string()),
                Err(_) => out.push_str(&digits),
            }
        }
    }
    out
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
            // As through sqlx (see [`super::Lists`]): SQLite is never sent a list.
            Self::Int(None) | Self::Text(None) | Self::Bytes(None) | Self::List(..) => {
                ValueRef::Null
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_shift_outside_quoted_strings_only() {
        let sql = "SELECT $1, '$2 costs', $10 FROM t WHERE a = $2 AND b = 'it''s $3'";
        assert_eq!(
            shift_binds(sql, 4),
            "SELECT $5, '$2 costs', $14 FROM t WHERE a = $6 AND b = 'it''s $3'"
        );
    }

    #[test]
    fn a_table_is_named_only_as_a_whole_word() {
        assert!(names(
            "INSERT INTO note_revisions (a) VALUES ($1)",
            "note_revisions"
        ));
        assert!(names("SELECT 1 FROM notes", "notes"));
        assert!(!names(
            "INSERT INTO note_revisions (a) VALUES ($1)",
            "notes"
        ));
        assert!(!names("SELECT status_notes_id FROM x", "status_notes"));
    }

    #[test]
    fn held_writes_go_first_with_their_binds_numbered_first() {
        let mut held = Held::default();
        held.hold(
            statement("INSERT INTO status_notes (a, b) VALUES ($1, $2)")
                .bind(1)
                .bind("x"),
            "status_notes",
        );
        held.hold(
            statement("INSERT INTO note_revisions (a) VALUES ($1)").bind(2),
            "note_revisions",
        );
        assert!(held.touches("SELECT body FROM note_revisions"));
        assert!(!held.touches("UPDATE clients SET email = $1"));
        let then = statement(
            "WITH e AS (INSERT INTO audit_log (a) VALUES ($1)) UPDATE log_head SET size = $2",
        )
        .bind(3)
        .bind(4);
        let sent = held.join(then);
        assert_eq!(
            sent.sql,
            "WITH kt_held_0 AS (INSERT INTO status_notes (a, b) VALUES ($1, $2)), \
             kt_held_1 AS (INSERT INTO note_revisions (a) VALUES ($3)), \
             e AS (INSERT INTO audit_log (a) VALUES ($4)) UPDATE log_head SET size = $5"
        );
        assert_eq!(
            sent.args,
            vec![
                SqlValue::Int(Some(1)),
                SqlValue::Text(Some("x".into())),
                SqlValue::Int(Some(2)),
                SqlValue::Int(Some(3)),
                SqlValue::Int(Some(4)),
            ]
        );
        assert!(held.take().is_none(), "nothing is held after");
    }

    #[test]
    fn held_writes_alone_end_in_a_select() {
        let mut held = Held::default();
        held.hold(
            statement("INSERT INTO status_notes (a) VALUES ($1)").bind(1),
            "status_notes",
        );
        let sent = held.take().expect("a statement");
        assert_eq!(
            sent.sql,
            "WITH kt_held_0 AS (INSERT INTO status_notes (a) VALUES ($1)) SELECT 1"
        );
    }

    fn update_shape() -> Shape {
        Shape {
            sql: "UPDATE clients AS t SET email = v.email FROM unnest($1::bigint[], $2::text[]) \
                  AS v(id, email) WHERE t.id = v.id"
                .into(),
            table: "clients",
        }
    }

    #[test]
    fn rows_of_one_shape_go_as_one_part_with_a_list_per_column() {
        let mut held = Held::default();
        held.hold_row(
            update_shape(),
            ("clients", 7),
            vec![SqlValue::from(7), SqlValue::from("a@x.com")],
        );
        held.hold(
            statement("INSERT INTO status_notes (a) VALUES ($1)").bind(1),
            "status_notes",
        );
        held.hold_row(
            update_shape(),
            ("clients", 9),
            vec![SqlValue::from(9), SqlValue::Text(None)],
        );
        let sent = held.take().expect("a statement");
        assert_eq!(
            sent.sql,
            "WITH kt_held_0 AS (UPDATE clients AS t SET email = v.email \
             FROM unnest($1::bigint[], $2::text[]) AS v(id, email) WHERE t.id = v.id), \
             kt_held_1 AS (INSERT INTO status_notes (a) VALUES ($3)) SELECT 1"
        );
        assert_eq!(
            sent.args,
            vec![
                SqlValue::List(CellKind::Int, vec![SqlValue::from(7), SqlValue::from(9)]),
                SqlValue::List(
                    CellKind::Text,
                    vec![SqlValue::from("a@x.com"), SqlValue::Text(None)]
                ),
                SqlValue::from(1),
            ]
        );
    }

    #[test]
    fn a_row_clashes_with_held_rows_of_its_key_and_writes_to_tables_it_names() {
        let mut held = Held::default();
        held.hold_row(update_shape(), ("clients", 7), vec![SqlValue::from(7)]);
        assert!(held.clashes(&update_shape(), ("clients", 7)));
        assert!(!held.clashes(&update_shape(), ("clients", 8)));
        let notes = Shape {
            sql: "INSERT INTO note_revisions (body) SELECT * FROM unnest($1::text[])".into(),
            table: "note_revisions",
        };
        assert!(!held.clashes(&notes, ("client", 7)), "another table");
        held.hold(
            statement("INSERT INTO note_revisions (body) VALUES ($1)").bind("x"),
            "note_revisions",
        );
        assert!(held.clashes(&notes, ("client", 8)), "a write of its own");
        assert!(held.touches("SELECT version FROM clients WHERE id = $1"));
    }
}
