//! Who is asking: browser sessions (cookie + CSRF guard) and API tokens (bearer), sign-in
//! with its lockout, security overrides, and the permission checks of reads.

use std::time::Duration;

use axum::{
    Json,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{Value, json};

use super::{
    ApiError, AppState,
    body::{JsonObject, take_extras, take_text},
};
use crate::domain::{
    audit::Request,
    digest::sha256_hex,
    field::FieldError,
    lockout,
    permission::{Feature, Grants, Level, Permission},
    record::RecordKind,
};
use crate::ledger::{ActorRef, Command, Context, NewSession, password};
use crate::store::{self, auth};

pub const COOKIE: &str = "keeptrack_session";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(2 * 3600);
/// A session ends this long after sign-in, used or not (a working day).
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Sessions and tokens record their use at most this often.
const TOUCH_EVERY_MICROS: i64 = 60 * 1_000_000;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The request's id, address and user agent, set by the request middleware.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo(pub Request);

impl RequestInfo {
    pub fn ip(&self) -> String {
        self.0.ip.clone().unwrap_or_else(|| "unknown".into())
    }
}

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Via {
    Session { id_hash: String, csrf_token: String },
    Token { id: i64 },
}

/// A signed-in user, with what they may do.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: i64,
    pub grants: Grants,
    pub via: Via,
    pub request: RequestInfo,
}

impl Caller {
    /// The ledger context for a change by this caller, with the body's reason and, when a
    /// manager's credentials came with it, the override (checked here; a failure is
    /// recorded and counts toward that manager's lockout).
    pub async fn context(
        &self,
        state: &AppState,
        body: &mut serde_json::Map<String, Value>,
    ) -> Result<Context, ApiError> {
        let extras = take_extras(body)?;
        let mut ctx = Context::user(self.user_id).with_request(self.request.0.clone());
        if let Some(reason) = extras.reason {
            ctx = ctx.with_reason(reason);
        }
        if let Some((username, pass)) = extras.authorize {
            let ip = self.request.ip();
            match check_password(state, &username, &pass, &ip).await? {
                Ok(id) => ctx = ctx.authorized_by(id),
                Err((_, outcome)) => {
                    state
                        .ledger
                        .submit(
                            Context::user(self.user_id).with_request(self.request.0.clone()),
                            Command::OverrideFailed {
                                username,
                                ip,
                                outcome: outcome.clone(),
                            },
                        )
                        .await?;
                    return Err(ApiError::OverrideFailed(format!(
                        "The manager's credentials were not accepted ({outcome})."
                    )));
                }
            }
        }
        Ok(ctx)
    }

    /// Passes if the caller has the permission; otherwise records the denial (at most once
    /// a minute per user and permission) and refuses.
    pub async fn require(
        &self,
        state: &AppState,
        permission: Permission,
        action: &str,
        record: Option<(RecordKind, i64)>,
    ) -> Result<(), ApiError> {
        if self.grants.allows(permission) {
            return Ok(());
        }
        self.denied(state, &permission.to_string(), action, record)
            .await;
        Err(ApiError::Forbidden(permission.to_string()))
    }

    pub async fn require_kind(
        &self,
        state: &AppState,
        kind: RecordKind,
        level: Level,
        record: Option<i64>,
    ) -> Result<(), ApiError> {
        let action = if level == Level::View {
            "read"
        } else {
            "change"
        };
        self.require(
            state,
            Permission::new(Feature::of_kind(kind), level),
            action,
            record.map(|id| (kind, id)),
        )
        .await
    }

    /// A ledger answer for this caller: a missing permission is recorded as a denial
    /// (rate-limited) before it becomes a 403, whichever route met it.
    pub async fn settle(
        &self,
        state: &AppState,
        result: Result<crate::ledger::Outcome, crate::ledger::Error>,
        action: &str,
        record: Option<(RecordKind, i64)>,
    ) -> Result<crate::ledger::Outcome, ApiError> {
        match result {
            Err(crate::ledger::Error::Forbidden(p)) => {
                self.denied(state, &p.to_string(), action, record).await;
                Err(ApiError::Forbidden(p.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// Records a refusal, rate-limited so a script cannot flood the log.
    pub async fn denied(
        &self,
        state: &AppState,
        permission: &str,
        action: &str,
        record: Option<(RecordKind, i64)>,
    ) {
        if !state.denials.allow(self.user_id, permission) {
            return;
        }
        let command = Command::Denied {
            permission: permission.to_owned(),
            action: action.to_owned(),
            record,
        };
        let ctx = Context::user(self.user_id).with_request(self.request.0.clone());
        if let Err(e) = state.ledger.submit(ctx, command).await {
            tracing::warn!(error = %e, "could not record a denial");
        }
    }
}

fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request = parts
            .extensions
            .get::<RequestInfo>()
            .cloned()
            .unwrap_or_default();
        let db = state.ledger.db();
        let now = crate::clock::now().as_microsecond();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let (user_id, via, member) = if let Some(token) = bearer {
            let hash = sha256_hex(token.trim());
            let (row, member) = match state.tokens.get(&state.ledger, &hash) {
                Some(known) => known,
                None => {
                    let seen = state.tokens.seen(&state.ledger);
                    let found = auth::token_member(db, &hash)
                        .await?
                        .filter(|(t, _)| t.revoked_at.is_none())
                        .ok_or_else(|| {
                            ApiError::Unauthenticated("This API token is not valid.".into())
                        })?;
                    state.tokens.keep(&hash, seen, &found.0, &found.1);
                    found
                }
            };
            if row
                .last_used_at
                .is_none_or(|t| now - t > TOUCH_EVERY_MICROS)
            {
                touch(state, Command::TouchToken { id: row.id });
                state.tokens.used(&hash, now);
            }
            (row.user_id, Via::Token { id: row.id }, member)
        } else if let Some(secret) = cookie_value(&parts.headers, COOKIE) {
            let id_hash = sha256_hex(&secret);
            let Some((row, member)) = auth::session_member(db, &id_hash).await? else {
                return Err(ApiError::Unauthenticated(
                    "Your session has ended; sign in again.".into(),
                ));
            };
            if row.ended_at.is_some() {
                return Err(ApiError::Unauthenticated(
                    "Your session has ended; sign in again.".into(),
                ));
            }
            if now >= row.expires_at || now - row.last_seen_at >= micros(IDLE) {
                // Ended by the timeout: on record like a sign-out.
                let _ = state
                    .ledger
                    .submit(
                        Context::system().with_request(request.0.clone()),
                        Command::SignOut { id_hash },
                    )
                    .await;
                return Err(ApiError::Unauthenticated(
                    "Your session timed out; sign in again.".into(),
                ));
            }
            if unsafe_method(&parts.method) {
                check_csrf(&parts.headers, &row.csrf_token)?;
            }
            if now - row.last_seen_at > TOUCH_EVERY_MICROS {
                touch(
                    state,
                    Command::TouchSession {
                        id_hash: id_hash.clone(),
                    },
                );
            }
            (
                row.user_id,
                Via::Session {
                    id_hash,
                    csrf_token: row.csrf_token,
                },
                member,
            )
        } else {
            return Err(ApiError::Unauthenticated(
                "Sign in (POST /api/v1/session) or send an API token as \"Authorization: Bearer ...\"."
                    .into(),
            ));
        };
        if !member.active() {
            return Err(ApiError::Unauthenticated(
                "This account is not active.".into(),
            ));
        }
        Ok(Self {
            user_id,
            grants: member.grants(),
            via,
            request,
        })
    }
}

/// Records a session's or token's use without making the request wait for the writer.
fn touch(state: &AppState, command: Command) {
    let ledger = state.ledger.clone();
    tokio::spawn(async move {
        if let Err(e) = ledger.submit(Context::system(), command).await {
            tracing::debug!(error = %e, "could not record a session's use");
        }
    });
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated change must come from our own pages: same origin (by `Origin`
/// or `Sec-Fetch-Site`) and carrying the session's CSRF token.
fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ApiError::Csrf(format!(
            "A change from another site ({site}) is refused."
        )));
    }
    if let Some(origin) = text("origin") {
        let host = text("host").unwrap_or_default();
        let origin_host = origin.split("://").nth(1).unwrap_or(origin);
        if origin_host != host {
            return Err(ApiError::Csrf(format!(
                "A change from another origin ({origin}) is refused."
            )));
        }
    }
    match text("x-csrf-token") {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::Csrf(
            "Send the session's CSRF token as X-CSRF-Token.".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A hash to check against when the user does not exist, so that an unknown name takes
/// as long as a wrong password.
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Checks a username (or initials) and password, honouring the lockout. `Ok(Err(...))`
/// is a failure to record: the account it names, if any, and why.
async fn check_password(
    state: &AppState,
    username: &str,
    pass: &str,
    ip: &str,
) -> Result<Result<i64, (Option<i64>, String)>, ApiError> {
    let db = state.ledger.db();
    let now = crate::clock::now().as_microsecond();
    let name = username.trim().to_lowercase();
    let (by_name, by_ip) = auth::recent_failures(
        db,
        &name,
        ip,
        now - lockout::WINDOW_MICROS,
        lockout::MAX_FAILURES,
    )
    .await?;
    let wait = lockout::retry_after(now, &by_name)
        .into_iter()
        .chain(lockout::retry_after(now, &by_ip))
        .max();
    if let Some(retry_after) = wait {
        return Err(ApiError::TooManyRequests { retry_after });
    }
    let mut user = store::records::find(db, RecordKind::User, "username", &name).await?;
    if user.is_none() {
        let initials = username.trim().to_uppercase();
        user = store::records::find(db, RecordKind::User, "initials", &initials).await?;
    }
    let user = user.filter(|u| !u.is_deleted());
    let stored = match &user {
        Some(u) => u.fields["password_hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        None => DUMMY_HASH
            .get_or_init(|| async {
                password::hash("not a password anyone has")
                    .await
                    .unwrap_or_default()
            })
            .await
            .clone(),
    };
    let matches = password::verify(pass, &stored).await;
    Ok(match user {
        None => Err((None, "unknown user".into())),
        Some(u) if !matches => Err((Some(u.id), "wrong password".into())),
        Some(u) if u.fields["active"] != Value::Bool(true) => {
            Err((Some(u.id), "inactive account".into()))
        }
        Some(u) => Ok(u.id),
    })
}

/// `POST /api/v1/session`: signs in with username (or initials) and password.
pub async fn sign_in(
    State(state): State<AppState>,
    request: axum::Extension<RequestInfo>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let mut text = |name: &str| match body.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(FieldError::new(name, "is required")),
    };
    let (username, pass) = match (text("username"), text("password")) {
        (Ok(u), Ok(p)) => (u, p),
        (u, p) => {
            return Err(ApiError::Validation(
                [u.err(), p.err()].into_iter().flatten().collect(),
            ));
        }
    };
    if let Some(extra) = body.keys().next() {
        return Err(ApiError::Validation(vec![FieldError::new(
            extra.clone(),
            "is not a sign-in field",
        )]));
    }
    let ip = request.ip();
    let user_id = match check_password(&state, &username, &pass, &ip).await? {
        Ok(id) => id,
        Err((user_id, outcome)) => {
            let ctx = Context::new(ActorRef::Anonymous).with_request(request.0.0.clone());
            let failed = Command::SignInFailed {
                username,
                user_id,
                ip,
                outcome,
            };
            state.ledger.submit(ctx, failed).await?;
            return Err(ApiError::Unauthenticated(
                "The username or password is not right.".into(),
            ));
        }
    };
    let secret = random_secret("");
    let csrf_token = random_secret("");
    let expires_at = crate::clock::now().as_microsecond() + micros(ABSOLUTE);
    let session = NewSession {
        id_hash: sha256_hex(&secret),
        csrf_token: csrf_token.clone(),
        expires_at,
    };
    let ctx = Context::user(user_id).with_request(request.0.0.clone());
    state
        .ledger
        .submit(ctx, Command::SignIn { session })
        .await?;
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={secret}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        ABSOLUTE.as_secs()
    );
    let body = me(&state, user_id, Some(&csrf_token)).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(body),
    )
        .into_response())
}

/// `DELETE /api/v1/session`: ends this session for good.
pub async fn sign_out(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let Via::Session { id_hash, .. } = &caller.via else {
        return Err(ApiError::BadRequest(
            "API tokens are not sessions; revoke the token instead".into(),
        ));
    };
    let ctx = Context::user(caller.user_id).with_request(caller.request.0.clone());
    state
        .ledger
        .submit(
            ctx,
            Command::SignOut {
                id_hash: id_hash.clone(),
            },
        )
        .await?;
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `GET /api/v1/session`: who is signed in and what they may do.
pub async fn session_info(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let (csrf, token) = match &caller.via {
        Via::Session { csrf_token, .. } => (Some(csrf_token.as_str()), None),
        Via::Token { id } => (None, Some(*id)),
    };
    let mut out = me(&state, caller.user_id, csrf).await?;
    out["token_id"] = json!(token);
    Ok(Json(out))
}

async fn me(state: &AppState, user_id: i64, csrf: Option<&str>) -> Result<Value, ApiError> {
    let member = store::records::member(state.ledger.db(), user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json!({
        "user": super::record_json(RecordKind::User, &member.user),
        "permissions": member.grants().to_value(),
        "csrf_token": csrf,
    }))
}

/// `POST /api/v1/tokens`: a token for the caller, shown once.
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let name = take_text(&mut body, "name")?;
    if let Some(extra) = body.keys().next() {
        return Err(ApiError::Validation(vec![FieldError::new(
            extra.clone(),
            "is not a token field",
        )]));
    }
    let secret = random_secret("kt_");
    let ctx = Context::user(caller.user_id).with_request(caller.request.0.clone());
    let out = state
        .ledger
        .submit(
            ctx,
            Command::CreateToken {
                name: name.clone(),
                hash: sha256_hex(&secret),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": out.token_id, "name": name.trim(), "token": secret,
                    "note": "Shown once: keep it somewhere safe."}),
        ),
    )
        .into_response())
}

/// `GET /api/v1/tokens`: the caller's tokens (never the secrets).
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let tokens = auth::tokens_of(state.ledger.db(), caller.user_id).await?;
    let instant = super::instant;
    let tokens: Vec<Value> = tokens
        .into_iter()
        .map(|t| {
            json!({"id": t.id, "name": t.name, "created_at": instant(t.created_at),
                   "last_used_at": t.last_used_at.map(instant),
                   "revoked_at": t.revoked_at.map(instant)})
        })
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

/// `DELETE /api/v1/tokens/{id}`: revokes a token at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let ctx = Context::user(caller.user_id).with_request(caller.request.0.clone());
    let result = state.ledger.submit(ctx, Command::RevokeToken { id }).await;
    caller
        .settle(&state, result, "revoke a token", None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/users/{id}/password`: a user changes their own (giving the current one) or,
/// with Users and Security, someone else's. Every session of that user ends.
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let ctx = caller.context(&state, &mut body).await?;
    let new = take_text(&mut body, "password")?;
    let current = body.remove("current_password");
    if let Some(extra) = body.keys().next() {
        return Err(ApiError::Validation(vec![FieldError::new(
            extra.clone(),
            "is not a password field",
        )]));
    }
    if id == caller.user_id {
        let user = store::records::get(state.ledger.db(), RecordKind::User, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let stored = user.fields["password_hash"].as_str().unwrap_or_default();
        let ok = match current.as_ref().and_then(Value::as_str) {
            Some(c) => password::verify(c, stored).await,
            None => false,
        };
        if !ok {
            return Err(ApiError::Validation(vec![FieldError::new(
                "current_password",
                "is not right",
            )]));
        }
    }
    let result = state.ledger.set_password(ctx, id, &new).await;
    caller
        .settle(
            &state,
            result,
            "set a password",
            Some((RecordKind::User, id)),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
