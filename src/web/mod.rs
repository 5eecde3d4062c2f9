//! The HTTP server: health check and JSON reads of records (the full API builds here).

mod error;

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
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

async fn get_record(
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = RecordKind::parse(&kind).ok_or(ApiError::NotFound)?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
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
