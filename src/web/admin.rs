//! The studio-wide routes: the audit trail, proofs and checkpoints, preferences, the
//! configurable lists, and the caller's time stamp.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde_json::{Value, json};

use super::{
    ApiError, AppState,
    auth::Caller,
    body::{JsonObject, take_text},
    instant,
};
use crate::audit::{self, Cursor};
use crate::domain::{
    audit::{Action, Category},
    field::FieldError,
    permission::{Feature, Level, Permission},
    record::RecordKind,
};
use crate::ledger::Command;
use crate::store;

/// `GET /api/v1/audit`: the Audit Trail Logs, newest first. Filters: `from`, `to`
/// (instants), `actor` (user id), `category`, `action`, `record_type`, `record_id`;
/// `limit` and `cursor` page.
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<audit::Page<audit::RawEntry>>, ApiError> {
    caller
        .require(
            &state,
            Permission::new(Feature::AuditLogs, Level::View),
            "read the audit log",
            None,
        )
        .await?;
    let mut q = audit::Query {
        limit: 50,
        ..Default::default()
    };
    let mut errors = Vec::new();
    for (name, value) in &params {
        let mut bad = |m: &str| errors.push(FieldError::new(name.clone(), m));
        match name.as_str() {
            "from" | "to" => match value.parse::<jiff::Timestamp>() {
                Ok(t) if name == "from" => q.from = Some(t),
                Ok(t) => q.to = Some(t),
                Err(_) => bad("must be an instant like 2018-10-18T15:00:00Z"),
            },
            "actor" => match value.parse() {
                Ok(id) => q.actor_id = Some(id),
                Err(_) => bad("must be a user id"),
            },
            "category" => match Category::parse(value) {
                Some(c) => q.category = Some(c),
                None => bad("is not a category"),
            },
            "action" => match Action::parse(value) {
                Some(a) => q.action = Some(a),
                None => bad("is not an action"),
            },
            "record_type" => match RecordKind::parse(value) {
                Some(k) => q.record_type = Some(k),
                None => bad("is not a record type"),
            },
            "record_id" => match value.parse() {
                Ok(id) => q.record_id = Some(id),
                Err(_) => bad("must be a record id"),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=audit::MAX_PAGE).contains(&n) => q.limit = n,
                _ => bad("must be 1 to 1000"),
            },
            "cursor" => match Cursor::parse(value) {
                Some(c) => q.cursor = Some(c),
                None => bad("is not one this API returned"),
            },
            _ => bad("is not a filter of the audit log"),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Json(audit::list_stored(state.ledger.db(), &q).await?))
}

/// `GET /api/v1/audit/proofs/{index}`: an offline proof bundle for one entry.
pub async fn proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(index): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller
        .require(
            &state,
            Permission::new(Feature::AuditLogs, Level::View),
            "prove an entry",
            None,
        )
        .await?;
    let index: u64 = index.parse().map_err(|_| ApiError::NotFound)?;
    let Some(key) = &state.verifier else {
        return Err(ApiError::Conflict {
            kind: "conflict",
            status: axum::http::StatusCode::CONFLICT,
            detail: "This server has no signing key, so there are no checkpoints to prove against."
                .into(),
            extra: json!({}),
        });
    };
    match audit::proof::prove(state.ledger.db(), index, key).await {
        Ok(bundle) => Ok(Json(json!(bundle))),
        Err(audit::proof::ProofError::NoEntry(_)) => Err(ApiError::NotFound),
        Err(e @ audit::proof::ProofError::NotCovered(_)) => Err(ApiError::Conflict {
            kind: "conflict",
            status: axum::http::StatusCode::CONFLICT,
            detail: e.to_string(),
            extra: json!({}),
        }),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// `GET /api/v1/checkpoints`: the newest signed checkpoints (signed notes).
pub async fn checkpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller
        .require(
            &state,
            Permission::new(Feature::AuditLogs, Level::View),
            "read checkpoints",
            None,
        )
        .await?;
    let rows = store::audit_log::checkpoints(state.ledger.db(), 100).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(size, ts, note)| json!({"size": size, "signed_at": instant(ts), "note": note}))
        .collect();
    Ok(Json(json!({"checkpoints": items})))
}

/// `GET /api/v1/preferences`.
pub async fn preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller
        .require(
            &state,
            Permission::new(Feature::Preferences, Level::View),
            "read preferences",
            None,
        )
        .await?;
    let prefs = store::preferences::all(state.ledger.db()).await?;
    let mut out = serde_json::Map::new();
    for c in Category::ALL.into_iter().filter(|c| c.switchable()) {
        let on = prefs.get(&c.preference_key()).map(String::as_str) != Some("off");
        out.insert(c.preference_key(), (if on { "on" } else { "off" }).into());
    }
    for p in crate::domain::preference::Preference::ALL {
        out.insert(
            p.key().into(),
            prefs.get(p.key()).cloned().map_or(Value::Null, Value::from),
        );
    }
    Ok(Json(Value::Object(out)))
}

/// `PUT /api/v1/preferences/{key}` `{value}`: a studio preference or an audit switch
/// (`audit.clients`: `on`/`off`).
pub async fn set_preference(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let ctx = caller.context(&state, &mut body).await?;
    let value = take_text(&mut body, "value")?;
    let command = match key.strip_prefix("audit.").map(Category::parse) {
        Some(Some(category)) => Command::SetAuditLogging {
            category,
            enabled: match value.as_str() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(ApiError::Validation(vec![FieldError::new(
                        "value",
                        "must be on or off",
                    )]));
                }
            },
        },
        Some(None) => return Err(ApiError::NotFound),
        None if crate::domain::preference::Preference::parse(&key).is_some() => {
            Command::SetPreference { key, value }
        }
        None => return Err(ApiError::NotFound),
    };
    let result = state.ledger.submit(ctx, command).await;
    caller
        .settle(&state, result, "change preferences", None)
        .await?;
    preferences(State(state), caller).await
}

/// `GET /api/v1/lists`: the configurable lists (statuses, types, payment methods).
pub async fn lists(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let items = store::lists::all(state.ledger.db()).await?;
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/stamp`: the stamp CTRL+T inserts for the caller, from the server's clock.
pub async fn stamp(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let stamp = audit::history::stamp_for(state.ledger.db(), caller.user_id, crate::clock::now())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"stamp": stamp})))
}
