//! Business records (clients, sessions, appointments, invoices, payments, users): one
//! table per kind, columns from the kind's field table, plus id, version and timestamps.

use std::sync::LazyLock;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::{
    CellKind, Db, Error, Result, Run, Shape, SqlValue, WriteTx, notes, statement,
    statement::Statement,
};
use crate::domain::{
    field::{Field, FieldType},
    list::ListKind,
    record::{Fields, RecordKind},
};

/// A record as stored: its business fields plus the columns every record has.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredRecord {
    pub id: i64,
    /// Starts at 1 and grows by one with every change: the ETag of the API.
    pub version: i64,
    /// Microseconds since the epoch, UTC.
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub fields: Fields,
}

impl StoredRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

const META: [&str; 5] = ["id", "version", "created_at", "updated_at", "deleted_at"];

fn cell_kind(ty: FieldType) -> CellKind {
    match ty {
        FieldType::Text { .. } | FieldType::Date | FieldType::Lines | FieldType::Grants => {
            CellKind::Text
        }
        FieldType::Bool => CellKind::Bool,
        _ => CellKind::Int,
    }
}

/// A field's canonical JSON value as a column value.
fn to_sql(field: &Field, value: &Value) -> Result<SqlValue> {
    let bad = || Error::Corrupt(format!("{} holds {value}", field.name));
    Ok(match field.ty {
        FieldType::Text { .. } | FieldType::Date => {
            SqlValue::Text(value.as_str().map(str::to_owned))
        }
        FieldType::Lines | FieldType::Grants if value.is_null() => SqlValue::Text(None),
        FieldType::Lines | FieldType::Grants => SqlValue::Text(Some(value.to_string())),
        FieldType::Bool => SqlValue::Bool(value.as_bool().unwrap_or(false)),
        FieldType::Instant => match value.as_str() {
            None => SqlValue::Int(None),
            Some(s) => SqlValue::Int(Some(
                s.parse::<Timestamp>().map_err(|_| bad())?.as_microsecond(),
            )),
        },
        _ => SqlValue::Int(value.as_i64()),
    })
}

/// A column value back as the field's canonical JSON value.
fn from_sql(field: &Field, value: SqlValue) -> Result<Value> {
    let bad = |what: &str| Error::Corrupt(format!("{} holds {what}", field.name));
    Ok(match (field.ty, value) {
        (FieldType::Lines | FieldType::Grants, SqlValue::Text(Some(s))) => {
            serde_json::from_str(&s).map_err(|_| bad("malformed lines"))?
        }
        (FieldType::Instant, SqlValue::Int(Some(us))) => Value::String(
            Timestamp::from_microsecond(us)
                .map_err(|_| bad("an impossible instant"))?
                .to_string(),
        ),
        (_, SqlValue::Int(v)) => v.map_or(Value::Null, Value::from),
        (_, SqlValue::Text(v)) => v.map_or(Value::Null, Value::from),
        (_, SqlValue::Bool(v)) => Value::Bool(v),
        (_, SqlValue::Bytes(_)) => return Err(bad("bytes")),
        (_, SqlValue::List(..)) => return Err(bad("a list")),
    })
}

/// Every column of a kind's table, in the order [`decode`] reads them; built once.
fn columns(kind: RecordKind) -> &'static str {
    static COLUMNS: LazyLock<Vec<String>> = LazyLock::new(|| {
        (RecordKind::ALL.iter())
            .map(|kind| {
                let fields = kind.fields().iter().map(|f| f.name);
                let cols: Vec<&str> = META.iter().copied().chain(fields).collect();
                cols.join(", ")
            })
            .collect()
    });
    let i = RecordKind::ALL.iter().position(|k| *k == kind);
    &COLUMNS[i.expect("every kind is in ALL")]
}

fn select_sql(kind: RecordKind) -> String {
    format!("SELECT {} FROM {}", columns(kind), kind.table())
}

/// The cells a record's row is read as: the common columns, then its fields.
fn row_kinds(kind: RecordKind) -> Vec<CellKind> {
    let fields = kind.fields().iter().map(|f| cell_kind(f.ty));
    [CellKind::Int; 5].into_iter().chain(fields).collect()
}

fn decode(kind: RecordKind, cells: Vec<SqlValue>) -> Result<StoredRecord> {
    let mut cells = cells.into_iter();
    let mut int = || match cells.next() {
        Some(SqlValue::Int(v)) => Ok(v),
        other => Err(Error::Corrupt(format!("{kind}: a column holds {other:?}"))),
    };
    let (id, version, created_at, updated_at, deleted_at) =
        (int()?, int()?, int()?, int()?, int()?);
    let mut fields = Fields::new();
    for (field, v) in kind.fields().iter().zip(cells) {
        fields.insert(field.name.to_owned(), from_sql(field, v)?);
    }
    Ok(StoredRecord {
        id: id.unwrap_or_default(),
        version: version.unwrap_or_default(),
        created_at: created_at.unwrap_or_default(),
        updated_at: updated_at.unwrap_or_default(),
        deleted_at,
        fields,
    })
}

/// The records a `SELECT` of [`select_sql`] returns.
async fn records(run: Run<'_>, kind: RecordKind, query: Statement) -> Result<Vec<StoredRecord>> {
    let rows = query.rows(run, &row_kinds(kind)).await?;
    rows.into_iter().map(|cells| decode(kind, cells)).collect()
}

pub(crate) async fn fetch(run: Run<'_>, kind: RecordKind, id: i64) -> Result<Option<StoredRecord>> {
    // The writer reads a record or two per command: its SQL is built once.
    static BY_ID: LazyLock<Vec<String>> = LazyLock::new(|| {
        (RecordKind::ALL.iter())
            .map(|kind| format!("{} WHERE id = $1", select_sql(*kind)))
            .collect()
    });
    let i = RecordKind::ALL.iter().position(|k| *k == kind);
    let sql: &'static str = &BY_ID[i.expect("every kind is in ALL")];
    Ok(records(run, kind, statement(sql).bind(id)).await?.pop())
}

/// One record, deleted or not.
pub async fn get(db: &Db, kind: RecordKind, id: i64) -> Result<Option<StoredRecord>> {
    let mut conn = db.reader().await?;
    fetch(conn.run(), kind, id).await
}

/// Reads inside the writer's transaction, so a command sees its own batch's changes.
pub async fn get_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    id: i64,
) -> Result<Option<StoredRecord>> {
    // Nothing is read ahead on SQLite: its writer need not even hash the key.
    if !tx.prefetched.is_empty()
        && let Some(record) = tx.prefetched.remove(&(kind, id))
    {
        return Ok(Some(record));
    }
    fetch(tx.run(), kind, id).await
}

/// Reads the records of `kind` with these ids in one statement, for
/// [`get_for_write`] to hand out instead of reading each, and with `notes` their notes'
/// newest revisions for [`notes::latest_for_write`] and the lines appended to them. The
/// writer holds the log's lock, so no one else changes them meanwhile, and writing one
/// drops it (`set_row`): what is handed out is what a read would find. Ids that name no
/// record are left to that read.
pub async fn prefetch_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    ids: &[i64],
    notes: bool,
) -> Result<()> {
    // One statement text per power of two (the last id repeated), not one per count, so
    // that PostgreSQL keeps a few prepared plans.
    let binds = ids.len().next_power_of_two();
    let marks: Vec<String> = (1..=binds).map(|n| format!("${n}")).collect();
    let last = ids.last().copied().unwrap_or_default();
    let args = (ids.iter().copied())
        .chain(std::iter::repeat(last))
        .take(binds)
        .map(|id| SqlValue::Int(Some(id)));
    if !notes {
        let sql = format!("{} WHERE id IN ({})", select_sql(kind), marks.join(", "));
        let found = records(tx.run_ahead(), kind, statement(sql).bind_all(args)).await?;
        for record in found {
            tx.prefetched.insert((kind, record.id), record);
        }
        return Ok(());
    }
    let sql = format!(
        "SELECT {}, {} FROM {} AS r LEFT JOIN LATERAL (SELECT * FROM note_revisions \
         WHERE record_type = '{}' AND record_id = r.id ORDER BY revision DESC LIMIT 1) AS n \
         ON true WHERE r.id IN ({})",
        qualified(columns(kind), "r"),
        notes::revision_columns("n"),
        kind.table(),
        kind.as_str(),
        marks.join(", ")
    );
    let mut kinds = row_kinds(kind);
    let width = kinds.len();
    kinds.extend(notes::REVISION_KINDS);
    let rows = statement(sql)
        .bind_all(args)
        .rows(tx.run_ahead(), &kinds)
        .await?;
    for mut cells in rows {
        let latest = notes::revision_from_cells(cells.split_off(width))?;
        let record = decode(kind, cells)?;
        tx.notes_ahead.insert((kind, record.id), latest);
        tx.prefetched.insert((kind, record.id), record);
    }
    Ok(())
}

/// A page of records in id order, starting after `after_id`.
pub async fn list(
    db: &Db,
    kind: RecordKind,
    after_id: i64,
    limit: i64,
    include_deleted: bool,
) -> Result<Vec<StoredRecord>> {
    let live = if include_deleted {
        ""
    } else {
        " AND deleted_at IS NULL"
    };
    let sql = format!(
        "{} WHERE id > $1{live} ORDER BY id LIMIT $2",
        select_sql(kind)
    );
    let mut conn = db.reader().await?;
    let query = statement(sql).bind(after_id).bind(limit);
    records(conn.run(), kind, query).await
}

/// A page request: equality filters, a sort column, and where the last page ended.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    /// Field name and the canonical JSON value it must equal.
    pub filters: Vec<(&'static Field, Value)>,
    /// A column that is never null (`id`, a timestamp, or a required field); ties break
    /// by id.
    pub sort: Option<&'static str>,
    pub descending: bool,
    /// The sort value and id of the last record of the previous page.
    pub after: Option<(Value, i64)>,
    pub limit: i64,
    pub deleted: Deleted,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Deleted {
    #[default]
    Exclude,
    Include,
    Only,
}

/// The value a record sorts by, as the cursor carries it.
pub fn sort_value(record: &StoredRecord, sort: &str) -> Value {
    match sort {
        "id" => record.id.into(),
        "created_at" => record.created_at.into(),
        "updated_at" => record.updated_at.into(),
        field => record.fields.get(field).cloned().unwrap_or(Value::Null),
    }
}

/// One page of records, filtered and sorted, continued by keyset.
pub async fn page(db: &Db, kind: RecordKind, q: &PageQuery) -> Result<Vec<StoredRecord>> {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    match q.deleted {
        Deleted::Exclude => clauses.push("deleted_at IS NULL".to_owned()),
        Deleted::Only => clauses.push("deleted_at IS NOT NULL".to_owned()),
        Deleted::Include => {}
    }
    for (field, value) in &q.filters {
        if value.is_null() {
            clauses.push(format!("{} IS NULL", field.name));
        } else {
            params.push(to_sql(field, value)?);
            clauses.push(format!("{} = ${}", field.name, params.len()));
        }
    }
    let sort = q.sort.unwrap_or("id");
    let (cmp, order) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((value, id)) = &q.after {
        let v = match kind.field(sort) {
            Some(field) => to_sql(field, value)?,
            None => SqlValue::Int(value.as_i64()),
        };
        if sort == "id" {
            params.push(SqlValue::Int(Some(*id)));
            clauses.push(format!("id {cmp} ${}", params.len()));
        } else {
            params.push(v.clone());
            let a = params.len();
            params.push(v);
            let b = params.len();
            params.push(SqlValue::Int(Some(*id)));
            let c = params.len();
            clauses.push(format!(
                "({sort} {cmp} ${a} OR ({sort} = ${b} AND id {cmp} ${c}))"
            ));
        }
    }
    params.push(SqlValue::Int(Some(q.limit)));
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let tie = if sort == "id" {
        String::new()
    } else {
        format!(", id {order}")
    };
    let sql = format!(
        "{}{where_sql} ORDER BY {sort} {order}{tie} LIMIT ${}",
        select_sql(kind),
        params.len()
    );
    let mut conn = db.reader().await?;
    records(conn.run(), kind, statement(sql).bind_all(params)).await
}

/// How many records of a kind are live.
pub async fn count(db: &Db, kind: RecordKind) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE deleted_at IS NULL",
        kind.table()
    );
    let mut conn = db.reader().await?;
    statement(sql).scalar(conn.run()).await
}

pub async fn insert(tx: &mut WriteTx, kind: RecordKind, fields: &Fields, now: i64) -> Result<i64> {
    let names: Vec<&str> = kind.fields().iter().map(|f| f.name).collect();
    let params: Vec<String> = (0..names.len() + 3)
        .map(|i| format!("${}", i + 1))
        .collect();
    let sql = format!(
        "INSERT INTO {} (version, created_at, updated_at, {}) VALUES ({}) RETURNING id",
        kind.table(),
        names.join(", "),
        params.join(", ")
    );
    let mut values = vec![
        SqlValue::Int(Some(1)),
        SqlValue::Int(Some(now)),
        SqlValue::Int(Some(now)),
    ];
    for field in kind.fields() {
        values.push(to_sql(
            field,
            fields.get(field.name).unwrap_or(&Value::Null),
        )?);
    }
    statement(sql).bind_all(values).scalar(tx.run()).await
}

/// Writes the changed fields of the record `before` (as read inside this transaction),
/// bumping its version. Answers the record as stored after the change.
pub async fn update(
    tx: &mut WriteTx,
    kind: RecordKind,
    before: &StoredRecord,
    changes: &Fields,
    now: i64,
) -> Result<StoredRecord> {
    let mut sets = Vec::with_capacity(changes.len());
    for (name, value) in changes {
        let Some(field) = kind.field(name) else {
            return Err(Error::Corrupt(format!("{name} is not a field of {kind}")));
        };
        sets.push((field.name, to_sql(field, value)?));
    }
    set_row(tx, kind, before, sets, now).await
}

/// Marks the record `before` deleted (`Some(now)`) or restores it (`None`), bumping the
/// version. Answers the record as stored after the change.
pub async fn set_deleted(
    tx: &mut WriteTx,
    kind: RecordKind,
    before: &StoredRecord,
    deleted_at: Option<i64>,
    now: i64,
) -> Result<StoredRecord> {
    let sets = vec![("deleted_at", SqlValue::Int(deleted_at))];
    set_row(tx, kind, before, sets, now).await
}

/// Sets these columns of the record `before`, its `version` one up and `updated_at`
/// to `now`, provided it is still at `before`'s version (another writer in between
/// would be a fault the caller hears of).
async fn set_row(
    tx: &mut WriteTx,
    kind: RecordKind,
    before: &StoredRecord,
    sets: Vec<(&'static str, SqlValue)>,
    now: i64,
) -> Result<StoredRecord> {
    if !tx.prefetched.is_empty() {
        tx.prefetched.remove(&(kind, before.id));
    }
    if tx.holds() {
        return hold_row(tx, kind, before, sets, now).await;
    }
    let mut assign = vec![
        "version = version + 1".to_owned(),
        "updated_at = $1".to_owned(),
    ];
    let mut values = vec![SqlValue::Int(Some(now))];
    for (name, value) in sets {
        values.push(value);
        assign.push(format!("{name} = ${}", values.len()));
    }
    values.push(SqlValue::Int(Some(before.id)));
    values.push(SqlValue::Int(Some(before.version)));
    // The row comes back from the statement that wrote it: what is stored, read after.
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ${} AND version = ${} RETURNING {}",
        kind.table(),
        assign.join(", "),
        values.len() - 1,
        values.len(),
        columns(kind)
    );
    let mut after = records(tx.run(), kind, statement(sql).bind_all(values)).await?;
    match (after.pop(), after.is_empty()) {
        (Some(record), true) => Ok(record),
        _ => Err(Error::Corrupt(format!(
            "{kind} {} changed under the writer",
            before.id
        ))),
    }
}

/// [`set_row`] held back for the next statement (see [`WriteTx::hold_row`]): the row
/// after is `before` with these columns set, read as a read would read them, so it is
/// known without asking. A row no longer at `before`'s version fails the statement
/// that carries it, naming the record (PostgreSQL cannot cast the sentence to a
/// number); the batch then runs again without holding, and the fault is told as above.
async fn hold_row(
    tx: &mut WriteTx,
    kind: RecordKind,
    before: &StoredRecord,
    sets: Vec<(&'static str, SqlValue)>,
    now: i64,
) -> Result<StoredRecord> {
    let mut after = before.clone();
    after.version += 1;
    after.updated_at = now;
    let mut assign = String::new();
    let mut names = String::new();
    let mut unnest = String::from("$1::bigint[], $2::bigint[], $3::bigint[]");
    let mut row = vec![
        SqlValue::Int(Some(before.id)),
        SqlValue::Int(Some(before.version)),
        SqlValue::Int(Some(now)),
    ];
    for (name, value) in sets {
        match (name, kind.field(name)) {
            ("deleted_at", _) => {
                after.deleted_at = match value {
                    SqlValue::Int(v) => v,
                    _ => return Err(Error::Corrupt(format!("deleted_at set to {value:?}"))),
                }
            }
            (_, Some(field)) => {
                after
                    .fields
                    .insert(name.to_owned(), from_sql(field, value.clone())?);
            }
            (_, None) => return Err(Error::Corrupt(format!("{name} is not a field of {kind}"))),
        }
        let ty = match value {
            SqlValue::Text(_) => "text",
            SqlValue::Bool(_) => "boolean",
            _ => "bigint",
        };
        row.push(value);
        assign.push_str(&format!(", {name} = v.{name}"));
        names.push_str(&format!(", {name}"));
        unnest.push_str(&format!(", ${}::{ty}[]", row.len()));
    }
    let table = kind.table();
    let sql = format!(
        "UPDATE {table} AS t SET version = CASE WHEN t.version = v.kt_version \
         THEN t.version + 1 ELSE ('{kind} ' || t.id || ' changed under the writer')::bigint END, \
         updated_at = v.kt_now{assign} FROM unnest({unnest}) AS v(kt_id, kt_version, kt_now{names}) \
         WHERE t.id = v.kt_id"
    );
    let shape = Shape {
        sql: sql.into(),
        table,
    };
    tx.hold_row(shape, (table, before.id), row).await?;
    Ok(after)
}

/// Whether a live (not deleted) record of `kind` has this id.
pub async fn is_live(tx: &mut WriteTx, kind: RecordKind, id: i64) -> Result<bool> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE id = $1 AND deleted_at IS NULL",
        kind.table()
    );
    let n: i64 = statement(sql).bind(id).scalar(tx.run()).await?;
    Ok(n > 0)
}

/// Whether another record (deleted ones included: their values stay theirs in the log)
/// already holds `value` in a unique field.
pub async fn is_taken(
    tx: &mut WriteTx,
    kind: RecordKind,
    field: &Field,
    value: &Value,
    except_id: Option<i64>,
) -> Result<bool> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} = $1 AND id <> $2",
        kind.table(),
        field.name
    );
    let v = to_sql(field, value)?;
    let params = [v, SqlValue::Int(Some(except_id.unwrap_or(0)))];
    let n: i64 = statement(sql).bind_all(params).scalar(tx.run()).await?;
    Ok(n > 0)
}

/// The live records of `kind` whose `field` points at `id`.
pub async fn referrers(tx: &mut WriteTx, kind: RecordKind, field: &str, id: i64) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {field} = $1 AND deleted_at IS NULL",
        kind.table()
    );
    statement(sql).bind(id).scalar(tx.run()).await
}

/// Live payments on the live invoices of a client.
pub async fn client_payments(tx: &mut WriteTx, client_id: i64) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM payments p JOIN invoices i ON i.id = p.invoice_id \
               WHERE i.client_id = $1 AND p.deleted_at IS NULL AND i.deleted_at IS NULL";
    statement(sql).bind(client_id).scalar(tx.run()).await
}

/// Takes the next number of a numbered kind (clients, sessions, invoices).
pub async fn next_number(tx: &mut WriteTx, kind: RecordKind, first: i64) -> Result<i64> {
    let sql = "INSERT INTO counters (name, last_number) VALUES ($1, $2) ON CONFLICT (name) \
               DO UPDATE SET last_number = counters.last_number + 1 RETURNING last_number";
    statement(sql)
        .bind(kind.table())
        .bind(first)
        .scalar(tx.run())
        .await
}

/// Whether a list entry exists in the right list and is active.
pub async fn choice_is_valid(tx: &mut WriteTx, list: ListKind, id: i64) -> Result<bool> {
    super::lists::is_active(tx.run(), list, id).await
}

/// The id of the record whose `field` equals `value`, deleted or not.
pub async fn find_id(db: &Db, kind: RecordKind, field: &str, value: &str) -> Result<Option<i64>> {
    let mut conn = db.reader().await?;
    find_id_in(conn.run(), kind, field, value).await
}

pub async fn find_id_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<Option<i64>> {
    find_id_in(tx.run(), kind, field, value).await
}

async fn find_id_in(
    run: Run<'_>,
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<Option<i64>> {
    let Some(f) = kind.field(field) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT id FROM {} WHERE {} = $1 ORDER BY id LIMIT 1",
        kind.table(),
        f.name
    );
    let row: Option<(i64,)> = statement(sql).bind(value).fetch_optional(run).await?;
    Ok(row.map(|(id,)| id))
}

/// The record whose `field` equals `value`, deleted or not.
pub async fn find_for_write(
    tx: &mut WriteTx,
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<Option<StoredRecord>> {
    find_in(tx.run(), kind, field, value).await
}

pub async fn find(
    db: &Db,
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<Option<StoredRecord>> {
    let mut conn = db.reader().await?;
    find_in(conn.run(), kind, field, value).await
}

async fn find_in(
    run: Run<'_>,
    kind: RecordKind,
    field: &str,
    value: &str,
) -> Result<Option<StoredRecord>> {
    let Some(f) = kind.field(field) else {
        return Ok(None);
    };
    let sql = format!(
        "{} WHERE {} = $1 ORDER BY id LIMIT 1",
        select_sql(kind),
        f.name
    );
    Ok(records(run, kind, statement(sql).bind(value)).await?.pop())
}

/// A user with the security group it names (deleted or not), read in one statement:
/// every request's caller and every command's actor is checked against both, and on
/// PostgreSQL each statement is a round trip.
#[derive(Clone, Debug)]
pub struct Member {
    pub user: StoredRecord,
    pub group: Option<StoredRecord>,
}

impl Member {
    /// What the user may do now: the group's grants (none once it is deleted) with the
    /// user's own exceptions laid over them.
    pub fn grants(&self) -> crate::domain::permission::Grants {
        let group = self.group.as_ref().filter(|g| !g.is_deleted());
        crate::domain::permission::effective(
            group.map(|g| &g.fields["permissions"]),
            self.user.fields.get("permissions"),
        )
    }

    /// Whether the user may act at all: not deleted, and active.
    pub fn active(&self) -> bool {
        !self.user.is_deleted() && self.user.fields["active"] == Value::Bool(true)
    }

    /// The select list for `users u` joined by [`Member::JOIN`]: the user's columns, then
    /// the group's.
    pub(crate) fn columns() -> &'static str {
        static COLUMNS: LazyLock<String> = LazyLock::new(|| {
            format!(
                "{}, {}",
                qualified(columns(RecordKind::User), "u"),
                qualified(columns(RecordKind::SecurityGroup), "g")
            )
        });
        &COLUMNS
    }

    /// Joins a query's `users u` to its group.
    pub(crate) const JOIN: &str = "LEFT JOIN security_groups g ON g.name = u.security_group";

    /// The cells [`Member::columns`] are read as.
    pub(crate) fn kinds() -> impl Iterator<Item = CellKind> {
        row_kinds(RecordKind::User)
            .into_iter()
            .chain(row_kinds(RecordKind::SecurityGroup))
    }

    pub(crate) fn decode(mut cells: Vec<SqlValue>) -> Result<Self> {
        let split = row_kinds(RecordKind::User).len().min(cells.len());
        let group = cells.split_off(split);
        // A user whose group is gone gets a row of NULLs for it.
        let group = match group.first() {
            Some(SqlValue::Int(Some(_))) => Some(decode(RecordKind::SecurityGroup, group)?),
            _ => None,
        };
        Ok(Self {
            user: decode(RecordKind::User, cells)?,
            group,
        })
    }
}

/// A column list (`a, b`) as columns of the table aliased `alias` (`x.a, x.b`).
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    let cols: Vec<String> = (columns.split(", "))
        .map(|c| format!("{alias}.{c}"))
        .collect();
    cols.join(", ")
}

/// A user and their group, deleted or not.
pub async fn member(db: &Db, user_id: i64) -> Result<Option<Member>> {
    let mut conn = db.reader().await?;
    member_in(conn.run(), user_id).await
}

/// A user and their group, inside the writer's transaction.
pub async fn member_for_write(tx: &mut WriteTx, user_id: i64) -> Result<Option<Member>> {
    member_in(tx.run(), user_id).await
}

async fn member_in(run: Run<'_>, user_id: i64) -> Result<Option<Member>> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {} FROM users u {} WHERE u.id = $1",
            Member::columns(),
            Member::JOIN
        )
    });
    let kinds: Vec<CellKind> = Member::kinds().collect();
    let rows = statement(SQL.as_str())
        .bind(user_id)
        .rows(run, &kinds)
        .await?;
    rows.into_iter().next().map(Member::decode).transpose()
}

/// How many live users are in a security group.
pub async fn group_members(tx: &mut WriteTx, group: &str) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM users WHERE security_group = $1 AND deleted_at IS NULL";
    statement(sql).bind(group).scalar(tx.run()).await
}
