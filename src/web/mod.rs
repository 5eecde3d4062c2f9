//! The HTTP server: the JSON API under `/api/v1` (described at `/api/openapi.json`),
//! sign-in, health, readiness and metrics.

mod admin;
mod auth;
mod body;
mod error;
mod known_tokens;
mod metrics;
pub mod openapi;
mod records;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::{Value, json};

pub use auth::RequestInfo;
pub use error::ApiError;

use crate::{
    audit::checkpoint::Verifier,
    domain::{audit::Request as RequestRef, record::RecordKind},
    ledger::Ledger,
    store::{self, records::StoredRecord},
};

#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    /// Set when served over TLS (behind a proxy that terminates it): cookies get `Secure`.
    pub secure_cookies: bool,
    /// The log's public key, for proof bundles.
    pub verifier: Option<Verifier>,
    metrics: Arc<metrics::Metrics>,
    denials: Arc<Denials>,
    tokens: Arc<known_tokens::KnownTokens>,
}

impl AppState {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            tokens: known_tokens::KnownTokens::hear(ledger.db()),
            ledger,
            secure_cookies: false,
            verifier: None,
            metrics: Arc::default(),
            denials: Arc::default(),
        }
    }
}

/// Rate-limits the recording of denials: one entry per user and permission per minute.
#[derive(Default)]
struct Denials(Mutex<HashMap<(i64, String), Instant>>);

impl Denials {
    fn allow(&self, user: i64, permission: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() > 10_000 {
            seen.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        match seen.get(&(user, permission.to_owned())) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                seen.insert((user, permission.to_owned()), now);
                true
            }
        }
    }
}

pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .route("/api/openapi.json", get(openapi::serve))
        .route(
            "/api/v1/session",
            post(auth::sign_in)
                .get(auth::session_info)
                .delete(auth::sign_out),
        )
        .route(
            "/api/v1/tokens",
            post(auth::create_token).get(auth::list_tokens),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(auth::revoke_token),
        )
        .route("/api/v1/users/{id}/password", put(auth::set_password))
        .route("/api/v1/stamp", get(admin::stamp))
        .route("/api/v1/audit", get(admin::audit))
        .route("/api/v1/audit/proofs/{index}", get(admin::proof))
        .route("/api/v1/checkpoints", get(admin::checkpoints))
        .route("/api/v1/preferences", get(admin::preferences))
        .route("/api/v1/preferences/{key}", put(admin::set_preference))
        .route("/api/v1/lists", get(admin::lists));
    for kind in RecordKind::ALL {
        api = records::routes(api, kind);
    }
    api.fallback(|| async {
        error::problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "There is no such path in this API.",
            json!({}),
            None,
        )
    })
    .method_not_allowed_fallback(|| async {
        error::problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad-request",
            "This method is not allowed here.",
            json!({}),
            None,
        )
    })
    .layer(DefaultBodyLimit::max(body::MAX_BODY))
    .layer(middleware::from_fn_with_state(state.clone(), observe))
    .with_state(state)
}

/// Gives every request an id (the caller's `X-Request-Id` if sensible), its address and
/// user agent for the log, answers with `X-Request-Id`, and counts it for `/metrics`.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map_or_else(new_request_id, str::to_owned);
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let ua = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect());
    req.extensions_mut().insert(RequestInfo(RequestRef {
        id: Some(id.clone()),
        ip,
        ua,
    }));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let mut response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error::problem(
            StatusCode::REQUEST_TIMEOUT,
            "bad-request",
            "The request took too long.",
            json!({}),
            None,
        ),
    };
    if response.status().is_client_error() && !is_problem(&response) {
        response = as_problem(response).await;
    }
    let status = response.status().as_u16();
    let took = started.elapsed();
    tracing::info!(request_id = %id, %method, %route, status, ms = took.as_secs_f64() * 1e3, "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    state.metrics.record(&method, &route, status, took);
    response
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// axum's own refusals (a query string that does not parse, a body over the limit) are
/// plain text; every error of this API is problem+json.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (kind, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "The request body is over 1 MB."),
        StatusCode::NOT_FOUND => ("not-found", "There is no such path in this API."),
        _ => ("bad-request", text.as_str()),
    };
    error::problem(status, kind, detail, json!({}), None)
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    crate::domain::digest::hex(&bytes)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and the writer is running.
async fn readyz(State(state): State<AppState>) -> Response {
    match store::audit_log::size(state.ledger.db()).await {
        Ok(size) if state.ledger.is_running() => {
            Json(json!({"status": "ready", "log_size": size})).into_response()
        }
        Ok(_) => ApiError::Unavailable.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::Unavailable.into_response()
        }
    }
}

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take, body included, before it gets 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves, then lets requests in flight finish. Slow clients
/// are cut off: headers must arrive within 10 s and a whole request within 30 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioExecutor, TokioIo, TokioTimer},
        server::{conn::auto::Builder, graceful::GracefulShutdown},
        service::TowerToHyperService,
    };
    use tower::ServiceExt;

    let app = router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .layer(axum::Extension(ConnectInfo(addr)))
            .map_request(|req: Request<hyper::body::Incoming>| req.map(axum::body::Body::new));
        let conn = builder.serve_connection_with_upgrades(
            TokioIo::new(stream),
            TowerToHyperService::new(service),
        );
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(REQUEST_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
    Ok(())
}

/// An instant as RFC 3339 UTC.
pub fn instant(us: i64) -> Value {
    jiff::Timestamp::from_microsecond(us).map_or(Value::Null, |t| t.to_string().into())
}

/// A record as the API shows it: its fields plus id, version and timestamps; secrets left out.
pub fn record_json(kind: RecordKind, record: &StoredRecord) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), record.id.into());
    out.insert("type".into(), kind.as_str().into());
    out.insert("version".into(), record.version.into());
    out.insert("label".into(), kind.label(record.id, &record.fields).into());
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
