//! Errors as RFC 9457 problem details with a stable `type`; internal causes are logged,
//! never sent.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::domain::field::FieldError;
use crate::ledger;

/// Every problem type the API answers with; the OpenAPI document lists them.
pub const PROBLEM_TYPES: [&str; 17] = [
    "bad-request",
    "validation",
    "unauthenticated",
    "forbidden",
    "override-failed",
    "csrf",
    "not-found",
    "conflict",
    "version-mismatch",
    "version-required",
    "locked",
    "in-use",
    "reason-required",
    "idempotency-mismatch",
    "too-many-requests",
    "payload-too-large",
    "internal",
];

#[derive(Debug)]
pub enum ApiError {
    NotFound,
    BadRequest(String),
    /// Input that parsed but is not acceptable, field by field.
    Validation(Vec<FieldError>),
    Unauthenticated(String),
    /// The permission lacked, e.g. `clients:delete`.
    Forbidden(String),
    OverrideFailed(String),
    Csrf(String),
    /// Someone saved first: the record as it is now comes back.
    VersionMismatch {
        detail: String,
        current: Option<Value>,
    },
    VersionRequired,
    Conflict {
        kind: &'static str,
        status: StatusCode,
        detail: String,
        extra: Value,
    },
    TooManyRequests {
        retry_after: i64,
    },
    PayloadTooLarge,
    Unavailable,
    Internal(String),
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<ledger::Error> for ApiError {
    fn from(e: ledger::Error) -> Self {
        use ledger::Error as E;
        let conflict = |kind, status, detail: String, extra| Self::Conflict {
            kind,
            status,
            detail,
            extra,
        };
        match e {
            E::Invalid(fields) => Self::Validation(fields),
            E::NotFound { .. } => Self::NotFound,
            E::Conflict { .. } => Self::VersionMismatch {
                detail: e.to_string(),
                current: None,
            },
            E::Deleted { .. } => {
                conflict("conflict", StatusCode::CONFLICT, e.to_string(), json!({}))
            }
            E::Locked { .. } => conflict("locked", StatusCode::CONFLICT, e.to_string(), json!({})),
            E::InUse(_) => conflict("in-use", StatusCode::CONFLICT, e.to_string(), json!({})),
            E::ReasonRequired { ref rules } => {
                let rules: Vec<&str> = rules.iter().map(|r| r.as_str()).collect();
                conflict(
                    "reason-required",
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("{e}; send it as \"reason\""),
                    json!({"rules": rules}),
                )
            }
            E::NotesConflict {
                revision,
                ref author,
                ref text,
            } => conflict(
                "conflict",
                StatusCode::CONFLICT,
                e.to_string(),
                json!({"current": {"revision": revision, "author": author, "text": text}}),
            ),
            E::Forbidden(p) => Self::Forbidden(p.to_string()),
            E::NotPermitted(_) => Self::Forbidden(e.to_string()),
            E::IdempotencyMismatch => conflict(
                "idempotency-mismatch",
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
                json!({}),
            ),
            E::Unavailable => Self::Unavailable,
            E::Store(_) | E::Tampered(_) | E::NotSaved(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut extra = json!({});
        let mut retry_after = None;
        let (status, kind, detail) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "No such record.".to_owned(),
            ),
            Self::BadRequest(detail) => (StatusCode::BAD_REQUEST, "bad-request", detail),
            Self::Validation(fields) => {
                let detail = fields
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                extra = json!({"errors": fields});
                (StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
            }
            Self::Unauthenticated(detail) => (StatusCode::UNAUTHORIZED, "unauthenticated", detail),
            Self::Forbidden(permission) => {
                extra = json!({"permission": permission});
                (
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "Not allowed: needs the {permission} permission. A manager may authorise \
                         it by sending \"authorize\": {{\"username\", \"password\"}} with a \"reason\"."
                    ),
                )
            }
            Self::OverrideFailed(detail) => (StatusCode::FORBIDDEN, "override-failed", detail),
            Self::Csrf(detail) => (StatusCode::FORBIDDEN, "csrf", detail),
            Self::VersionMismatch { detail, current } => {
                extra = json!({"current": current});
                (StatusCode::PRECONDITION_FAILED, "version-mismatch", detail)
            }
            Self::VersionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "version-required",
                "Send If-Match with the record's ETag (its version) so a colleague's change is \
                 not overwritten."
                    .to_owned(),
            ),
            Self::Conflict {
                kind,
                status,
                detail,
                extra: more,
            } => {
                extra = more;
                (status, kind, detail)
            }
            Self::TooManyRequests { retry_after: secs } => {
                retry_after = Some(secs);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-requests",
                    format!("Too many failed sign-ins; try again in {secs} seconds."),
                )
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is over 1 MB.".to_owned(),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "The server is stopping; try again shortly.".to_owned(),
            ),
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side; it has been logged.".to_owned(),
                )
            }
        };
        problem(status, kind, &detail, extra, retry_after)
    }
}

/// A problem+json response.
pub fn problem(
    status: StatusCode,
    kind: &str,
    detail: &str,
    extra: Value,
    retry_after: Option<i64>,
) -> Response {
    let mut body = json!({
        "type": format!("https://keeptrack.dev/problems/{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}
