//! The HTTP server: health check and JSON reads of records (the full API builds here).

mod error;

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::ApiError;

use crate::{
    domain::record::RecordKind,
    ledger::Ledger,
    store::{self, records::StoredRecord},
};

#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/{kind}/{id}", get(get_record))
        .route("/api/v1/{kind}/{id}/history", get(history))
        .route("/api/v1/{kind}/{id}/as-of", get(as_of))
        .route("/api/v1/{kind}/{id}/notes", get(notes))
        .route("/api/v1/{kind}/{id}/status-notes", get(status_notes))
        .route("/api/v1/users/{id}/stamp", get(stamp))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let size = store::audit_log::size(state.ledger.db()).await?;
    Ok(Json(json!({"status": "ok", "log_size": size})))
}

/// The record kind and id of a path, or 404.
fn record_path((kind, id): (String, String)) -> Result<(RecordKind, i64), ApiError> {
    let kind = RecordKind::parse(&kind).ok_or(ApiError::NotFound)?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    Ok((kind, id))
}

/// As `record_path`, and the record must exist (deleted or not), or 404.
async fn existing_record(
    state: &AppState,
    path: (String, String),
) -> Result<(RecordKind, i64), ApiError> {
    let (kind, id) = record_path(path)?;
    store::records::get(state.ledger.db(), kind, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((kind, id))
}

#[derive(Deserialize)]
struct PageParams {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
    Query(page): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let (kind, id) = existing_record(&state, path).await?;
    let db = state.ledger.db();
    if let Some(c) = &page.cursor
        && c.split('.').count() != 3
    {
        return Err(ApiError::BadRequest(
            "cursor: not one this API returned".into(),
        ));
    }
    let timeline = crate::audit::history::timeline(
        db,
        kind,
        id,
        page.cursor.as_deref(),
        page.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(json!(timeline)))
}

#[derive(Deserialize)]
struct AsOfParams {
    at: String,
}

async fn as_of(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
    Query(params): Query<AsOfParams>,
) -> Result<Json<Value>, ApiError> {
    let (kind, id) = record_path(path)?;
    let at: jiff::Timestamp = params.at.parse().map_err(|_| {
        ApiError::BadRequest("at: must be an instant like 2018-10-18T15:00:00Z".into())
    })?;
    let state = crate::audit::history::as_of(state.ledger.db(), kind, id, at)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!(state)))
}

async fn notes(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (kind, id) = existing_record(&state, path).await?;
    let db = state.ledger.db();
    let latest = store::notes::latest(db, kind, id).await?;
    Ok(Json(match latest {
        Some(r) => json!({"revision": r.revision, "text": r.text, "author": r.author, "ts": r.ts}),
        None => json!({"revision": 0, "text": ""}),
    }))
}

async fn status_notes(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (kind, id) = existing_record(&state, path).await?;
    let db = state.ledger.db();
    let notes = store::notes::status_notes(db, kind, id, None, crate::audit::MAX_PAGE).await?;
    Ok(Json(json!({"status_notes": notes})))
}

async fn stamp(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let stamp = crate::audit::history::stamp_for(state.ledger.db(), id, crate::clock::now())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"stamp": stamp})))
}

async fn get_record(
    State(state): State<AppState>,
    Path(path): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (kind, id) = record_path(path)?;
    let record = store::records::get(state.ledger.db(), kind, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(record_json(kind, &record)))
}

/// A record as the API shows it: its fields plus id, version and timestamps; secrets left out.
pub fn record_json(kind: RecordKind, record: &StoredRecord) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), record.id.into());
    out.insert("type".into(), kind.as_str().into());
    out.insert("version".into(), record.version.into());
    out.insert("label".into(), kind.label(record.id, &record.fields).into());
    let instant = |us: i64| {
        jiff::Timestamp::from_microsecond(us).map_or(Value::Null, |t| t.to_string().into())
    };
    out.insert("created_at".into(), instant(record.created_at));
    out.insert("updated_at".into(), instant(record.updated_at));
    out.insert(
        "deleted_at".into(),
        record.deleted_at.map_or(Value::Null, instant),
    );
    for field in kind.fields().iter().filter(|f| !f.secret) {
        out.insert(
            field.name.into(),
            record
                .fields
                .get(field.name)
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    if kind == RecordKind::Invoice
        && let Some(totals) = crate::domain::invoice::totals_of(&record.fields)
    {
        out.insert("totals".into(), json!(totals));
    }
    Value::Object(out)
}
