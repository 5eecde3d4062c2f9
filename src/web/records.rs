//! `/api/v1/{kind}`: list, read, create, update (If-Match), delete, restore, post, unlock
//! and void records, and each record's notes, status notes, history and as-of view.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{Value, json};

use super::{
    ApiError, AppState,
    auth::Caller,
    body::{JsonObject, take_text},
    record_json,
};
use crate::domain::{
    field::{Access, FieldError, FieldType},
    permission::Level,
    record::RecordKind,
};
use crate::ledger::{Command, Idempotency, Outcome};
use crate::store::{
    self,
    records::{Deleted, PageQuery, StoredRecord},
};

const DEFAULT_PAGE: i64 = 50;

/// The ETag of a record: its version.
pub fn etag(record: &StoredRecord) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", record.version)).expect("digits and quotes")
}

/// A record with its ETag.
fn with_etag(status: StatusCode, kind: RecordKind, record: &StoredRecord) -> Response {
    let mut response = (status, Json(record_json(kind, record))).into_response();
    response.headers_mut().insert(header::ETAG, etag(record));
    response
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

async fn load(state: &AppState, kind: RecordKind, id: i64) -> Result<StoredRecord, ApiError> {
    store::records::get(state.ledger.db(), kind, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `If-Match: "3"` (or `W/"3"`) as a version; `*` means any.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match: not an ETag".into()))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::BadRequest("If-Match: not an ETag this API gave".into()))
}

/// Submits a change for the caller; a stale version comes back as 412 with the record
/// as it is now, a missing permission is recorded as a denial.
async fn submit(
    state: &AppState,
    caller: &Caller,
    ctx: crate::ledger::Context,
    kind: RecordKind,
    id: Option<i64>,
    command: Command,
) -> Result<Outcome, ApiError> {
    let action = command_action(&command);
    match state.ledger.submit(ctx, command).await {
        Err(e @ crate::ledger::Error::Conflict { .. }) => {
            let current = match id {
                Some(id) => store::records::get(state.ledger.db(), kind, id)
                    .await?
                    .map(|r| record_json(kind, &r)),
                None => None,
            };
            Err(ApiError::VersionMismatch {
                detail: e.to_string(),
                current,
            })
        }
        result => {
            caller
                .settle(state, result, action, id.map(|id| (kind, id)))
                .await
        }
    }
}

fn command_action(command: &Command) -> &'static str {
    match command {
        Command::Create { .. } | Command::CreateUser { .. } => "create",
        Command::Update { .. } => "update",
        Command::Delete { .. } => "delete",
        Command::Restore { .. } => "restore",
        Command::Post { .. } => "post",
        Command::Unlock { .. } => "unlock",
        Command::VoidPayment { .. } => "void",
        Command::SaveNotes { .. } | Command::AppendNotes { .. } => "notes",
        _ => "change",
    }
}

/// `GET /api/v1/{kind}`: filters by field (`?last_name=Smith`), `sort` (a never-empty
/// field, `-` for descending), `deleted=include|only`, `limit`, `cursor`.
pub async fn list(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    params: HashMap<String, String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_kind(&state, kind, Level::View, None).await?;
    let mut q = PageQuery {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    let mut errors = Vec::new();
    let mut cursor = None;
    for (name, value) in &params {
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=crate::audit::MAX_PAGE).contains(&n) => q.limit = n,
                _ => errors.push(FieldError::new("limit", "must be 1 to 1000")),
            },
            "cursor" => cursor = Some(value.clone()),
            "deleted" => match value.as_str() {
                "include" => q.deleted = Deleted::Include,
                "only" => q.deleted = Deleted::Only,
                "exclude" => q.deleted = Deleted::Exclude,
                _ => errors.push(FieldError::new(
                    "deleted",
                    "must be include, only or exclude",
                )),
            },
            "sort" => {
                let (desc, field) = match value.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, value.as_str()),
                };
                match sortable(kind, field) {
                    Some(f) => {
                        q.sort = Some(f);
                        q.descending = desc;
                    }
                    None => errors.push(FieldError::new(
                        "sort",
                        "must be id, created_at, updated_at or a required field",
                    )),
                }
            }
            field => match kind
                .field(field)
                .filter(|f| !f.secret && f.ty != FieldType::Lines)
            {
                Some(f) => {
                    let raw = match f.ty {
                        FieldType::Int
                        | FieldType::Cents
                        | FieldType::Ref(_)
                        | FieldType::Choice(_) => value
                            .parse::<i64>()
                            .map_or_else(|_| Value::from(value.as_str()), Value::from),
                        FieldType::Bool => match value.as_str() {
                            "true" => Value::Bool(true),
                            "false" => Value::Bool(false),
                            _ => Value::from(value.as_str()),
                        },
                        _ => Value::from(value.as_str()),
                    };
                    match f.check(&raw) {
                        Ok(v) => q.filters.push((f, v)),
                        Err(e) => errors.push(e),
                    }
                }
                None => errors.push(FieldError::new(field, "is not a filter of this list")),
            },
        }
    }
    if let Some(c) = cursor {
        match decode_cursor(&c) {
            Some(after) => q.after = Some(after),
            None => errors.push(FieldError::new("cursor", "is not one this API returned")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let limit = q.limit;
    q.limit += 1;
    let mut rows = store::records::page(state.ledger.db(), kind, &q).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let sort = q.sort.unwrap_or("id");
    let next = more
        .then(|| rows.last())
        .flatten()
        .map(|r| encode_cursor(&store::records::sort_value(r, sort), r.id));
    let items: Vec<Value> = rows.iter().map(|r| record_json(kind, r)).collect();
    Ok(Json(json!({"items": items, "next": next})))
}

fn sortable(kind: RecordKind, name: &str) -> Option<&'static str> {
    match name {
        "id" => Some("id"),
        "created_at" => Some("created_at"),
        "updated_at" => Some("updated_at"),
        _ => kind
            .fields()
            .iter()
            .find(|f| f.name == name && f.required && !f.secret && f.ty != FieldType::Lines)
            .map(|f| f.name),
    }
}

fn encode_cursor(value: &Value, id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([value, id]).to_string())
}

fn decode_cursor(s: &str) -> Option<(Value, i64)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let id = v.get(1)?.as_i64()?;
    Some((v.get(0)?.clone(), id))
}

/// `GET /api/v1/{kind}/{id}`.
pub async fn get(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    caller
        .require_kind(&state, kind, Level::View, Some(id))
        .await?;
    let record = load(&state, kind, id).await?;
    Ok(with_etag(StatusCode::OK, kind, &record))
}

/// The request's `Idempotency-Key`, with a digest of the body it came with (a key used
/// again with another body is refused).
fn idempotency(
    headers: &HeaderMap,
    body: &serde_json::Map<String, Value>,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key: 1 to 255 visible characters".into())
        })?;
    let request_hash = crate::domain::digest::sha256_hex(&Value::Object(body.clone()).to_string());
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash,
    }))
}

/// `POST /api/v1/{kind}`. Users take a `password`. Invoices and payments honour
/// `Idempotency-Key`: a retry answers the first result.
pub async fn create(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let mut ctx = caller.context(&state, &mut body).await?;
    if let Some(idem) = idempotency(&headers, &body)? {
        if !matches!(kind, RecordKind::Invoice | RecordKind::Payment) {
            return Err(ApiError::BadRequest(
                "Idempotency-Key is for invoices, payments and notes lines".into(),
            ));
        }
        ctx = ctx.with_idempotency(idem);
    }
    let out = if kind == RecordKind::User {
        let password = take_text(&mut body, "password")?;
        let result = state.ledger.create_user(ctx, body, &password).await;
        caller.settle(&state, result, "create", None).await?
    } else {
        let command = Command::Create { kind, fields: body };
        submit(&state, &caller, ctx, kind, None, command).await?
    };
    let record = out
        .record
        .ok_or_else(|| ApiError::Internal("a create returned no record".into()))?;
    let mut response = with_etag(
        if out.replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        kind,
        &record,
    );
    let location = format!("/api/v1/{}/{}", kind.table(), record.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if out.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `PATCH /api/v1/{kind}/{id}` with `If-Match`: sets the fields given.
pub async fn update(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let version = if_match(&headers)?;
    if version.is_none() && !headers.contains_key(header::IF_MATCH) {
        return Err(ApiError::VersionRequired);
    }
    let ctx = caller.context(&state, &mut body).await?;
    if kind == RecordKind::User && body.contains_key("password") {
        return Err(ApiError::Validation(vec![FieldError::new(
            "password",
            "is changed at PUT /api/v1/users/{id}/password",
        )]));
    }
    let command = Command::Update {
        kind,
        id,
        fields: body,
        expected_version: version,
    };
    let out = submit(&state, &caller, ctx, kind, Some(id), command).await?;
    answer(&state, kind, id, out).await
}

/// `DELETE /api/v1/{kind}/{id}`: a soft delete (restorable); `If-Match` optional.
pub async fn delete(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let version = if_match(&headers)?;
    let ctx = caller.context(&state, &mut body).await?;
    no_fields(&body)?;
    let command = Command::Delete {
        kind,
        id,
        expected_version: version,
    };
    let out = submit(&state, &caller, ctx, kind, Some(id), command).await?;
    answer(&state, kind, id, out).await
}

/// The record a change left, with its ETag (a change that changed nothing has it too).
async fn answer(
    state: &AppState,
    kind: RecordKind,
    id: i64,
    out: Outcome,
) -> Result<Response, ApiError> {
    let record = match out.record {
        Some(r) => r,
        None => load(state, kind, id).await?,
    };
    Ok(with_etag(StatusCode::OK, kind, &record))
}

fn no_fields(body: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
    match body.keys().next() {
        Some(k) => Err(ApiError::Validation(vec![FieldError::new(
            k.clone(),
            "is not accepted here (only reason and authorize)",
        )])),
        None => Ok(()),
    }
}

/// `POST /api/v1/{kind}/{id}/{restore|post|unlock|void}`.
pub async fn act(
    kind: RecordKind,
    action: &'static str,
    state: AppState,
    caller: Caller,
    id: String,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ctx = caller.context(&state, &mut body).await?;
    no_fields(&body)?;
    let command = match action {
        "restore" => Command::Restore { kind, id },
        "post" => Command::Post { kind, id },
        "unlock" => Command::Unlock { kind, id },
        _ => Command::VoidPayment { id },
    };
    let out = submit(&state, &caller, ctx, kind, Some(id), command).await?;
    answer(&state, kind, id, out).await
}

/// `GET /api/v1/{kind}/{id}/history`: entries, status notes and notes revisions, newest
/// first; `limit` (1 to 1000) and `cursor` page.
pub async fn history(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    params: HashMap<String, String>,
) -> Result<Json<crate::audit::history::Timeline>, ApiError> {
    let id = parse_id(&id)?;
    caller
        .require_kind(&state, kind, Level::View, Some(id))
        .await?;
    let mut errors = Vec::new();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (name, value) in &params {
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=crate::audit::MAX_PAGE).contains(&n) => limit = n,
                _ => errors.push(FieldError::new("limit", "must be 1 to 1000")),
            },
            "cursor"
                if value.split('.').count() == 3
                    && value.split('.').all(|p| p.parse::<i64>().is_ok()) =>
            {
                cursor = Some(value.clone());
            }
            "cursor" => errors.push(FieldError::new("cursor", "is not one this API returned")),
            _ => errors.push(FieldError::new(
                name.clone(),
                "is not a parameter of history",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let timeline =
        crate::audit::history::timeline(state.ledger.db(), kind, id, cursor.as_deref(), limit)
            .await?;
    // Records are never removed, so one with a history exists: only an empty page needs
    // the record read to tell "no more" from "no such record".
    if timeline.items.is_empty() {
        load(&state, kind, id).await?;
    }
    Ok(Json(timeline))
}

/// `GET /api/v1/{kind}/{id}/as-of?at=INSTANT`: the record as the log says it was then.
pub async fn as_of(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    at: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    caller
        .require_kind(&state, kind, Level::View, Some(id))
        .await?;
    let at: jiff::Timestamp = at.unwrap_or_default().parse().map_err(|_| {
        ApiError::Validation(vec![FieldError::new(
            "at",
            "must be an instant like 2018-10-18T15:00:00Z",
        )])
    })?;
    let state = crate::audit::history::as_of(state.ledger.db(), kind, id, at)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!(state)))
}

/// `GET /api/v1/{kind}/{id}/notes`: the latest revision.
pub async fn notes(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    caller
        .require_kind(&state, kind, Level::View, Some(id))
        .await?;
    // Records are never removed, so only a record without notes may be one that does
    // not exist.
    let latest = store::notes::latest(state.ledger.db(), kind, id).await?;
    Ok(Json(match latest {
        Some(r) => json!({"revision": r.revision, "text": r.text, "author": r.author,
                          "ts": super::instant(r.ts)}),
        None => {
            load(&state, kind, id).await?;
            json!({"revision": 0, "text": ""})
        }
    }))
}

/// `PUT /api/v1/{kind}/{id}/notes` `{text, base_revision}`: a new revision; 409 with the
/// colleague's text if someone saved since `base_revision`.
pub async fn save_notes(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    JsonObject(mut body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let ctx = caller.context(&state, &mut body).await?;
    let text = required_text(&mut body);
    let base = match body.remove("base_revision") {
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| FieldError::new("base_revision", "must be a revision number")),
        None => Err(FieldError::new("base_revision", "is required")),
    };
    let (text, base_revision) = both_fields(text, base)?;
    no_fields(&body)?;
    let command = Command::SaveNotes {
        kind,
        id,
        text,
        base_revision,
    };
    let out = submit(&state, &caller, ctx, kind, Some(id), command).await?;
    Ok(notes_saved(out))
}

/// Two fields read from a body, or every problem with them at once.
fn both_fields<A, B>(
    a: Result<A, FieldError>,
    b: Result<B, FieldError>,
) -> Result<(A, B), ApiError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(ApiError::Validation(
            [a.err(), b.err()].into_iter().flatten().collect(),
        )),
    }
}

fn required_text(body: &mut serde_json::Map<String, Value>) -> Result<String, FieldError> {
    match body.remove("text") {
        Some(Value::String(t)) => Ok(t),
        _ => Err(FieldError::new("text", "is required (text)")),
    }
}

/// The answer to a save or an addition: the revision and the text as stored.
fn notes_saved(out: Outcome) -> Json<Value> {
    Json(json!({
        "revision": out.notes_revision.unwrap_or(0),
        "text": out.notes_text.unwrap_or_default(),
        "changed": out.changed,
    }))
}

/// `POST /api/v1/{kind}/{id}/notes/lines` `{text, stamp?}`: adds a line below the notes
/// as a new revision, stamped unless `stamp` is false; never a 409. With an
/// `Idempotency-Key`, a retry answers the first result instead of adding the line again.
pub async fn append_notes(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let mut ctx = caller.context(&state, &mut body).await?;
    if let Some(idem) = idempotency(&headers, &body)? {
        ctx = ctx.with_idempotency(idem);
    }
    let text = required_text(&mut body);
    let stamp = match body.remove("stamp") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(FieldError::new("stamp", "must be true or false")),
    };
    let (text, stamp) = both_fields(text, stamp)?;
    no_fields(&body)?;
    let command = Command::AppendNotes {
        kind,
        id,
        text,
        stamp,
    };
    let out = submit(&state, &caller, ctx, kind, Some(id), command).await?;
    let replayed = out.replayed;
    let mut response = notes_saved(out).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /api/v1/{kind}/{id}/status-notes`.
pub async fn status_notes(
    kind: RecordKind,
    state: AppState,
    caller: Caller,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    caller
        .require_kind(&state, kind, Level::View, Some(id))
        .await?;
    load(&state, kind, id).await?;
    let notes =
        store::notes::status_notes(state.ledger.db(), kind, id, None, crate::audit::MAX_PAGE)
            .await?;
    Ok(Json(json!({"status_notes": notes})))
}

/// Fields a caller may send on create, for the API document.
pub fn writable(
    kind: RecordKind,
    creating: bool,
) -> impl Iterator<Item = &'static crate::domain::field::Field> {
    kind.fields().iter().filter(move |f| match f.access {
        Access::Editable => true,
        Access::CreateOnly => creating,
        Access::System => false,
    })
}

/// Wires one record kind's routes.
pub fn routes(router: axum::Router<AppState>, kind: RecordKind) -> axum::Router<AppState> {
    use axum::routing::{get as g, post as p};
    let base = format!("/api/v1/{}", kind.table());
    let one = format!("{base}/{{id}}");
    let mut router = router
        .route(
            &base,
            g(
                move |State(s): State<AppState>,
                      c: Caller,
                      Query(q): Query<HashMap<String, String>>| {
                    list(kind, s, c, q)
                },
            )
            .post(
                move |State(s): State<AppState>, c: Caller, h: HeaderMap, b: JsonObject| {
                    create(kind, s, c, h, b)
                },
            ),
        )
        .route(
            &one,
            g(
                move |State(s): State<AppState>, c: Caller, Path(id): Path<String>| {
                    get(kind, s, c, id)
                },
            )
            .patch(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      h: HeaderMap,
                      b: JsonObject| update(kind, s, c, id, h, b),
            )
            .delete(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      h: HeaderMap,
                      b: JsonObject| delete(kind, s, c, id, h, b),
            ),
        )
        .route(
            &format!("{one}/restore"),
            p(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      b: JsonObject| { act(kind, "restore", s, c, id, b) },
            ),
        )
        .route(
            &format!("{one}/history"),
            g(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      Query(q): Query<HashMap<String, String>>| {
                    history(kind, s, c, id, q)
                },
            ),
        )
        .route(
            &format!("{one}/as-of"),
            g(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      Query(q): Query<HashMap<String, String>>| {
                    as_of(kind, s, c, id, q.get("at").cloned())
                },
            ),
        )
        .route(
            &format!("{one}/notes"),
            g(
                move |State(s): State<AppState>, c: Caller, Path(id): Path<String>| {
                    notes(kind, s, c, id)
                },
            )
            .put(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      b: JsonObject| { save_notes(kind, s, c, id, b) },
            ),
        )
        .route(
            &format!("{one}/notes/lines"),
            p(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      h: HeaderMap,
                      b: JsonObject| { append_notes(kind, s, c, id, h, b) },
            ),
        )
        .route(
            &format!("{one}/status-notes"),
            g(
                move |State(s): State<AppState>, c: Caller, Path(id): Path<String>| {
                    status_notes(kind, s, c, id)
                },
            ),
        );
    if kind.postable() {
        for action in ["post", "unlock"] {
            router = router.route(
                &format!("{one}/{action}"),
                p(
                    move |State(s): State<AppState>,
                          c: Caller,
                          Path(id): Path<String>,
                          b: JsonObject| { act(kind, action, s, c, id, b) },
                ),
            );
        }
    }
    if kind == RecordKind::Payment {
        router = router.route(
            &format!("{one}/void"),
            p(
                move |State(s): State<AppState>,
                      c: Caller,
                      Path(id): Path<String>,
                      b: JsonObject| { act(kind, "void", s, c, id, b) },
            ),
        );
    }
    router
}
