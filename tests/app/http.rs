//! The JSON API through the router: sign-in, sessions and tokens, permissions and
//! overrides, ETags, idempotency, bad input, the OpenAPI document.

use axum::{Router, body::Body, http::Request};
use http_body_util::BodyExt;
use keeptrack::{
    domain::{
        audit::{Action, Category},
        record::RecordKind,
    },
    web,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::both;
use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery";

pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

/// A client of the API: anonymous, a browser session (cookie + CSRF token) or a token.
#[derive(Clone)]
pub struct Api {
    router: Router,
    cookie: Option<String>,
    csrf: Option<String>,
    token: Option<String>,
    /// The address requests come from (the lockout counts per address).
    ip: [u8; 4],
    /// Headers sent with every request.
    extra: Vec<(String, String)>,
}

impl Api {
    pub fn new(app: &TestApp) -> Self {
        Self {
            router: web::router(web::AppState::new(app.ledger.clone())),
            cookie: None,
            csrf: None,
            token: None,
            ip: [127, 0, 0, 1],
            extra: Vec::new(),
        }
    }

    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut out = self.clone();
        out.extra.push((name.to_owned(), value.to_owned()));
        out
    }

    pub fn at_ip(&self, ip: [u8; 4]) -> Self {
        Self { ip, ..self.clone() }
    }

    pub async fn raw(&self, mut req: Request<Body>) -> Reply {
        let addr = std::net::SocketAddr::from((self.ip, 40000));
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status < 500, "{status}: {body}");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn request(&self, method: &str, path: &str) -> axum::http::request::Builder {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(c) = &self.cookie {
            b = b.header("cookie", format!("keeptrack_session={c}"));
        }
        if let Some(t) = &self.csrf {
            b = b.header("x-csrf-token", t);
        }
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in &self.extra {
            b = b.header(k, v);
        }
        b
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send_with(method, path, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = self.request(method, path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }

    /// Signs in; the client then carries the session cookie and CSRF token.
    pub async fn sign_in(&self, username: &str) -> Self {
        let r = self
            .send(
                "POST",
                "/api/v1/session",
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
        let secret = cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        Self {
            cookie: Some(secret),
            csrf: r.body["csrf_token"].as_str().map(str::to_owned),
            ..self.clone()
        }
    }

    /// The same caller asking another server: a router and a ledger of its own over the
    /// same database.
    pub async fn on_another_server(&self, app: &TestApp) -> Self {
        let ledger = keeptrack::ledger::Ledger::start(app.db.clone())
            .await
            .unwrap();
        Self {
            router: web::router(web::AppState::new(ledger)),
            ..self.clone()
        }
    }

    /// This caller asking the server `other` asks.
    pub fn served_by(&self, other: &Api) -> Self {
        Self {
            router: other.router.clone(),
            ..self.clone()
        }
    }

    /// The server's `/metrics`, as text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .router
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The value of one unlabelled series of `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// As an owner: a new security group, which starts with no access, and a user `fran`
    /// in it. Answers their ids.
    pub async fn new_group_with_fran(&self, group: &str) -> (i64, i64) {
        let r = self
            .send(
                "POST",
                "/api/v1/security_groups",
                Some(json!({"name": group})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["permissions"], json!({}));
        let group_id = r.body["id"].as_i64().unwrap();
        let fran = json!({"username": "fran", "display_name": "Fran Desk", "initials": "FD",
                          "security_group": group, "password": PASSWORD});
        let r = self.send("POST", "/api/v1/users", Some(fran)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        (group_id, r.body["id"].as_i64().unwrap())
    }

    /// As an owner: sets a security group's permissions.
    pub async fn grant(&self, group: i64, permissions: Value) {
        let path = format!("/api/v1/security_groups/{group}");
        self.patched(&path, json!({ "permissions": permissions }))
            .await;
    }

    /// As an owner: deactivates a user.
    pub async fn deactivate(&self, user: i64) {
        self.patched(&format!("/api/v1/users/{user}"), json!({"active": false}))
            .await;
    }

    /// Sets the fields given, whatever the version, and expects it done.
    async fn patched(&self, path: &str, fields: Value) {
        let r = self
            .send_with("PATCH", path, Some(fields), &[("if-match", "*")])
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    pub async fn with_token(&self, username: &str) -> Self {
        let session = self.sign_in(username).await;
        let r = session
            .send("POST", "/api/v1/tokens", Some(json!({"name": "test"})))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        Self {
            token: r.body["token"].as_str().map(str::to_owned),
            ..self.clone()
        }
    }
}

fn problem_type(r: &Reply) -> &str {
    r.body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("https://keeptrack.dev/problems/")
}

both!(sign_in_sessions_csrf_and_sign_out, |app| {
    let api = Api::new(&app);
    let r = api.get("/api/v1/clients").await;
    assert_eq!((r.status, problem_type(&r)), (401, "unauthenticated"));
    let bad = api
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "mary", "password": "not it at all"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let failed = &app.latest(1).await[0];
    assert_eq!(
        (failed.cat, failed.act),
        (Category::UserAuthentication, Action::SignInFailed)
    );
    assert_eq!(failed.rec.as_ref().unwrap().id, app.manager);
    assert_eq!(
        failed.sec.as_ref().unwrap().outcome.as_deref(),
        Some("wrong password")
    );

    // Initials sign in too, as in Spectra.
    let r = api
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "mkh", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert_eq!(app.latest(1).await[0].act, Action::SignIn);
    // Every sign-in gets a new session id.
    let one = api.sign_in("mary").await;
    let two = api.sign_in("mary").await;
    assert_ne!(one.cookie, two.cookie);

    let me = one.get("/api/v1/session").await;
    assert_eq!(me.body["user"]["initials"], "MKH");
    assert_eq!(me.body["permissions"]["users_and_security"], "none");
    let client = app.client("Smith").await;
    let path = format!("/api/v1/clients/{}", client.id);
    let change = json!({"first_name": "Janet"});
    // A change without the CSRF token, or from another site, is refused.
    let no_csrf = Api {
        csrf: None,
        ..one.clone()
    };
    let r = no_csrf
        .send_with("PATCH", &path, Some(change.clone()), &[("if-match", "*")])
        .await;
    assert_eq!((r.status, problem_type(&r)), (403, "csrf"));
    let r = one
        .send_with(
            "PATCH",
            &path,
            Some(change.clone()),
            &[
                ("if-match", "*"),
                ("origin", "https://evil.example"),
                ("host", "studio.example"),
            ],
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (403, "csrf"));
    let r = one
        .send_with(
            "PATCH",
            &path,
            Some(change.clone()),
            &[("if-match", "*"), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = one
        .send_with("PATCH", &path, Some(change), &[("if-match", "*")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = one.send("DELETE", "/api/v1/session", None).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.latest(1).await[0].act, Action::SignOut);
    let r = one.get("/api/v1/session").await;
    assert_eq!(r.status, 401);
    // The other session is untouched.
    assert_eq!(two.get("/api/v1/session").await.status, 200);
});

both!(five_failures_lock_the_account_with_retry_after, |app| {
    let api = Api::new(&app);
    for _ in 0..5 {
        let r = api
            .send(
                "POST",
                "/api/v1/session",
                Some(json!({"username": "sam", "password": "guessing wrong"})),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(app.latest(1).await[0].act, Action::Lockout);
    // Even the right password waits now.
    let r = api
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "sam", "password": PASSWORD})),
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (429, "too-many-requests"));
    let wait: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // The account is locked from every address.
    let r = api
        .at_ip([10, 0, 0, 9])
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "sam", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 429);
    // Unknown users fail the same way and are recorded.
    let r = api
        .at_ip([10, 0, 0, 7])
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "nobody", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 401);
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.act, Action::SignInFailed);
    assert_eq!(
        entry.sec.as_ref().unwrap().outcome.as_deref(),
        Some("unknown user")
    );
});

both!(api_tokens_are_shown_once_scoped_and_revocable, |app| {
    let api = Api::new(&app);
    let staff = api.with_token("sam").await;
    let r = staff.get("/api/v1/clients").await;
    assert_eq!(r.status, 200);
    // Scoped to the user's permissions: staff cannot read the audit log.
    let r = staff.get("/api/v1/audit").await;
    assert_eq!((r.status, problem_type(&r)), (403, "forbidden"));
    assert_eq!(r.body["permission"], "audit_logs:view");
    let denied = &app.latest(1).await[0];
    assert_eq!(denied.act, Action::Denied);
    let list = staff.get("/api/v1/tokens").await;
    let tokens = list.body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].get("token").is_none(), "never shown again");
    let id = tokens[0]["id"].as_i64().unwrap();
    let r = staff
        .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.latest(1).await[0].act, Action::TokenRevoke);
    assert_eq!(staff.get("/api/v1/clients").await.status, 401);
});

/// Asks `path` until the answer is `status`, for at most ten seconds: how long another
/// server takes to hear of a change.
async fn until_answered(ask: &Api, path: &str, status: u16) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        let r = ask.get(path).await;
        if r.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "{path} still answers {} after ten seconds",
            r.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the server hears PostgreSQL's notices, and so keeps tokens.
async fn until_hearing(api: &Api) {
    for _ in 0..500 {
        if api.metric("keeptrack_access_notices_heard").await == 1.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server never heard the database's notices");
}

both!(
    a_kept_token_stops_on_every_server_as_soon_as_access_changes,
    |app| {
        let postgres = app.url.starts_with("postgres");
        let api = Api::new(&app);
        let here = api.with_token("sam").await;
        let there = here.on_another_server(&app).await;
        if postgres {
            until_hearing(&here).await;
            until_hearing(&there).await;
        } else {
            assert_eq!(there.metric("keeptrack_access_notices_heard").await, 0.0);
        }
        // The token's own creation was a change the servers hear of; let that notice land.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for ask in [&here, &there] {
            for _ in 0..3 {
                assert_eq!(ask.get("/api/v1/clients").await.status, 200);
            }
        }
        // PostgreSQL: each server looked the token up, then answered from what it kept.
        for ask in [&here, &there] {
            let kept = ask.metric("keeptrack_token_requests_kept_total").await;
            assert!(if postgres { kept >= 1.0 } else { kept == 0.0 }, "{kept}");
        }

        // Revoked on one server: refused there at once, and on the other once it hears.
        let id = here.get("/api/v1/session").await.body["token_id"]
            .as_i64()
            .unwrap();
        let r = here
            .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(here.get("/api/v1/clients").await.status, 401);
        let took = until_answered(&there, "/api/v1/clients", 401).await;
        assert!(took.as_secs() < 2, "{took:?}");

        // Changed by hand, past every ledger: the database tells both servers.
        let mary = api.with_token("mary").await;
        let mary_there = mary.served_by(&there);
        for ask in [&mary, &mary_there] {
            assert_eq!(ask.get("/api/v1/clients").await.status, 200);
            assert_eq!(ask.get("/api/v1/clients").await.status, 200);
        }
        crate::helpers::exec(
            &app.db,
            "UPDATE users SET active = false WHERE username = 'mary'",
        )
        .await;
        until_answered(&mary, "/api/v1/clients", 401).await;
        until_answered(&mary_there, "/api/v1/clients", 401).await;

        // A group's permissions changed through this server's ledger apply here at once,
        // with no notice: the server counts its own ledger's changes.
        if postgres {
            for table in ["users", "security_groups"] {
                let sql = format!("ALTER TABLE {table} DISABLE TRIGGER {table}_access");
                crate::helpers::exec(&app.db, &sql).await;
            }
        }
        let owner = api.with_token("owner").await;
        let (group, fran_id) = owner.new_group_with_fran("desk").await;
        let fran = api.with_token("fran").await;
        assert_eq!(fran.get("/api/v1/clients").await.status, 403);
        assert_eq!(fran.get("/api/v1/clients").await.status, 403);
        owner.grant(group, json!({"clients": "view"})).await;
        assert_eq!(fran.get("/api/v1/clients").await.status, 200);
        assert_eq!(fran.get("/api/v1/clients").await.status, 200);
        owner.deactivate(fran_id).await;
        assert_eq!(fran.get("/api/v1/clients").await.status, 401);

        // When the notices' connection drops, nothing kept before is trusted again: with
        // the triggers off, that is the only way this change by hand is seen.
        if postgres {
            assert_eq!(owner.get("/api/v1/clients").await.status, 200);
            let sql = "UPDATE users SET active = false WHERE username = 'owner'";
            crate::helpers::exec(&app.db, sql).await;
            assert_eq!(owner.get("/api/v1/clients").await.status, 200, "kept");
            let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                       WHERE datname = current_database() AND query LIKE 'LISTEN%'";
            crate::helpers::exec(&app.db, sql).await;
            until_answered(&owner, "/api/v1/clients", 401).await;
            until_hearing(&here).await;
        }
    }
);

both!(updates_need_the_current_etag, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let r = api
        .send(
            "POST",
            "/api/v1/clients",
            Some(json!({"first_name": "Jane", "last_name": "Smith", "email": "jane@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.headers["location"], format!("/api/v1/clients/{id}"));
    let path = format!("/api/v1/clients/{id}");
    let r = api
        .send("PATCH", &path, Some(json!({"first_name": "Janet"})))
        .await;
    assert_eq!((r.status, problem_type(&r)), (428, "version-required"));
    let r = api
        .send_with(
            "PATCH",
            &path,
            Some(json!({"first_name": "Janet"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["etag"], "\"2\"");
    // A colleague still holding version 1 is told, and shown the record as it is now.
    let r = api
        .send_with(
            "PATCH",
            &path,
            Some(json!({"first_name": "Jan"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (412, "version-mismatch"));
    assert_eq!(r.body["current"]["first_name"], "Janet");
    assert_eq!(r.body["current"]["version"], 2);
    // Validation errors name the field.
    let r = api
        .send_with(
            "PATCH",
            &path,
            Some(json!({"email": "not an email", "nickname": "J"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (422, "validation"));
    let named: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(named.contains(&"nickname"), "{named:?}");
    // A reason is asked for where the policy wants one.
    let r = api
        .send_with(
            "PATCH",
            &path,
            Some(json!({"email": "j@example.com"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (422, "reason-required"));
    let r = api
        .send_with(
            "PATCH",
            &path,
            Some(json!({"email": "j@example.com", "reason": "Client asked"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.latest(1).await[0].reason.as_deref(),
        Some("Client asked")
    );

    // Lists filter, sort and page.
    for last in ["Adams", "Brown", "Clark"] {
        app.client(last).await;
    }
    let r = api.get("/api/v1/clients?sort=-last_name&limit=2").await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Smith", "Clark"]);
    let next = r.body["next"].as_str().unwrap();
    let r = api
        .get(&format!(
            "/api/v1/clients?sort=-last_name&limit=2&cursor={next}"
        ))
        .await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["last_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Brown", "Adams"]);
    let r = api.get("/api/v1/clients?last_name=Adams").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = api.get("/api/v1/clients?shoe_size=9").await;
    assert_eq!(r.status, 422);
});

both!(overrides_by_a_managers_credentials, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let client = app.client("Smith").await;
    let path = format!("/api/v1/clients/{}", client.id);
    let r = api
        .send("DELETE", &path, Some(json!({"reason": "Duplicate"})))
        .await;
    assert_eq!((r.status, problem_type(&r)), (403, "forbidden"));
    assert_eq!(r.body["permission"], "clients:delete");
    assert_eq!(app.latest(1).await[0].act, Action::Denied);
    // A wrong manager password is refused and recorded.
    let r = api
        .send(
            "DELETE",
            &path,
            Some(json!({"reason": "Duplicate",
                        "authorize": {"username": "mary", "password": "wrong guess!"}})),
        )
        .await;
    assert_eq!((r.status, problem_type(&r)), (403, "override-failed"));
    assert_eq!(app.latest(1).await[0].act, Action::OverrideFailed);
    // Staff cannot authorise anyone.
    let r = api
        .send(
            "DELETE",
            &path,
            Some(json!({"reason": "Duplicate",
                        "authorize": {"username": "sam", "password": PASSWORD}})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .send(
            "DELETE",
            &path,
            Some(json!({"reason": "Duplicate",
                        "authorize": {"username": "mary", "password": PASSWORD}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["deleted_at"].is_string());
    let latest = app.latest(2).await;
    let (delete, overridden) = (&latest[1], &latest[0]);
    assert_eq!(delete.act, Action::Delete);
    assert_eq!(delete.actor.initials, "SS");
    assert_eq!(
        (overridden.cat, overridden.act),
        (Category::UserAuthentication, Action::Override)
    );
    let auth = overridden.auth.as_ref().unwrap();
    assert_eq!(auth.initials, "MKH");
    assert_eq!(auth.permission, "clients:delete, delete_records");
    assert_eq!(overridden.reason.as_deref(), Some("Duplicate"));
    assert_eq!(
        overridden.sec.as_ref().unwrap().action.as_deref(),
        Some("delete")
    );
    // The manager restores it without anyone's help.
    let manager = Api::new(&app).with_token("mary").await;
    let r = manager
        .send(
            "POST",
            &format!("{path}/restore"),
            Some(json!({"reason": "Not a duplicate"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["deleted_at"].is_null());
});

both!(a_retried_payment_is_taken_once, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    let method = app.list_id("payment_method", "Cash").await;
    let body = json!({"invoice_id": invoice.id, "amount_cents": 2500, "payment_method_id": method});
    let key = [("idempotency-key", "pay-7f3a")];
    let first = api
        .send_with("POST", "/api/v1/payments", Some(body.clone()), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let size = app.log_size().await;
    let again = api
        .send_with("POST", "/api/v1/payments", Some(body), &key)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(app.log_size().await, size, "nothing new was written");
    let other =
        json!({"invoice_id": invoice.id, "amount_cents": 9900, "payment_method_id": method});
    let r = api
        .send_with("POST", "/api/v1/payments", Some(other), &key)
        .await;
    assert_eq!((r.status, problem_type(&r)), (422, "idempotency-mismatch"));
    let r = api
        .get(&format!("/api/v1/payments?invoice_id={}", invoice.id))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
});

both!(requests_are_named_in_the_log, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let r = api
        .send_with(
            "POST",
            "/api/v1/clients",
            Some(json!({"last_name": "Smith"})),
            &[
                ("x-request-id", "req-42"),
                ("user-agent", "studio-sync/1.0"),
            ],
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "req-42");
    let entry = &app.latest(1).await[0];
    let req = entry.req.as_ref().unwrap();
    assert_eq!(req.id.as_deref(), Some("req-42"));
    assert_eq!(req.ua.as_deref(), Some("studio-sync/1.0"));
    // Without one, the server makes one up and says which.
    let r = api.get("/api/v1/clients").await;
    assert_eq!(r.headers["x-request-id"].len(), 24);
});

both!(bad_input_gets_a_clear_4xx_and_writes_nothing, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let size = app.log_size().await;
    let raw = |body: Vec<u8>| {
        api.request("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let deep = format!(
        "{{\"last_name\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"{\"last_name\": ".to_vec(), 400),
        (
            b"{\"last_name\": \"A\", \"last_name\": \"B\"}".to_vec(),
            400,
        ),
        (deep.into_bytes(), 400),
        (b"{\"last_name\": \"\xff\xfe\"}".to_vec(), 400),
        (b"[\"last_name\"]".to_vec(), 400),
        (b"{\"last_name\": 42}".to_vec(), 422),
        (b"{\"last_name\": \"A\\u0000B\"}".to_vec(), 422),
        (b"{\"last_name\": \"A\", \"shoe_size\": 9}".to_vec(), 422),
        (
            b"{\"last_name\": \"A\", \"do_not_market\": 1e400}".to_vec(),
            400,
        ),
        (
            format!("{{\"last_name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            413,
        ),
    ];
    for (body, want) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let r = api.raw(raw(body)).await;
        assert_eq!(r.status, want, "{shown}: {}", r.body);
        assert!(r.body["type"].is_string(), "problem+json for {shown}");
    }
    let r = api
        .raw(
            api.request("POST", "/api/v1/clients")
                .header("content-type", "text/plain")
                .body(Body::from("last_name=Smith"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api.get("/api/v1/clients/not-a-number").await;
    assert_eq!(r.status, 404);
    let r = api.send("PUT", "/api/v1/clients", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(app.log_size().await, size, "nothing was written");
});

both!(the_openapi_document_matches_the_routes, |app| {
    let api = Api::new(&app).with_token("owner").await;
    let doc = api.get("/api/openapi.json").await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    let ops = web::openapi::operations();
    assert!(ops.len() >= 90, "{}", ops.len());
    for (method, path) in ops {
        let concrete = path
            .replace("{id}", "999999")
            .replace("{index}", "0")
            .replace("{key}", "studio.time_zone");
        let r = api
            .send_with(
                &method.to_uppercase(),
                &concrete,
                None,
                &[("if-match", "*")],
            )
            .await;
        assert!(
            r.status != 405 && r.body["detail"] != "There is no such path in this API.",
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        let documented = doc.body["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap()
            .contains_key(&r.status.to_string());
        assert!(
            documented,
            "{method} {path} answered {} undocumented",
            r.status
        );
    }
    // And a path that is not in the document is not served.
    let r = api.get("/api/v1/spaceships").await;
    assert_eq!(r.status, 404);
});

both!(readiness_and_metrics, |app| {
    let api = Api::new(&app);
    assert_eq!(api.get("/readyz").await.status, 200);
    assert_eq!(api.get("/healthz").await.status, 200);
    api.get("/api/v1/clients").await;
    let r = api
        .raw(api.request("GET", "/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, 200);
    let text = api.metrics().await;
    assert!(
        text.contains("keeptrack_http_requests_total{method=\"GET\",route=\"/api/v1/clients\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.contains("keeptrack_audit_log_size "));
    assert!(text.contains("keeptrack_writer_queue_depth 0"));
    // The test studio reads PostgreSQL through one connection (a connection given back
    // a moment ago may still count as busy).
    if app.url.starts_with("postgres") {
        assert!(
            text.contains("\nkeeptrack_db_read_connections_max 1\n"),
            "{text}"
        );
        let busy = text
            .lines()
            .find_map(|l| l.strip_prefix("keeptrack_db_read_connections_busy "));
        assert!(matches!(busy, Some("0" | "1")), "{text}");
    } else {
        assert!(!text.contains("keeptrack_db_read_connections"), "{text}");
    }
});

both!(records_read_as_json, |app| {
    let api = Api::new(&app).with_token("owner").await;
    let client = app.client("Smith").await;
    let r = api.get(&format!("/api/v1/clients/{}", client.id)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["label"], "Client #1001 Jane Smith");
    assert_eq!(r.body["email"], "jane@example.com");
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));
    let r = api.get(&format!("/api/v1/users/{}", app.owner)).await;
    assert!(r.body.get("password_hash").is_none());
    for path in [
        "/api/v1/clients/999999",
        "/api/v1/spaceships/1",
        "/api/v1/clients/999999/history",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    // A page past the start of a record's history is empty, not a 404.
    let last = format!("/api/v1/clients/{}/history?limit=1&cursor=0.0.0", client.id);
    let r = api.get(&last).await;
    assert_eq!(
        (r.status, r.body["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let invoice = app.invoice(client.id).await;
    let r = api.get(&format!("/api/v1/invoices/{}", invoice.id)).await;
    assert_eq!(r.body["totals"]["total_cents"], 5000);
    let _ = RecordKind::Invoice;
});

both!(
    a_retried_line_with_an_idempotency_key_is_added_once,
    |app| {
        let api = Api::new(&app).with_token("sam").await;
        let client = app.client("Smith").await;
        let other = app.client("Jones").await;
        let lines = format!("/api/v1/clients/{}/notes/lines", client.id);
        let key = [("idempotency-key", "call-0042")];
        let body = json!({"text": "Called about proofs.", "stamp": false});
        let first = api
            .send_with("POST", &lines, Some(body.clone()), &key)
            .await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert!(first.headers.get("idempotent-replayed").is_none());
        // The phone system timed out and sends it again: the same answer, no second line.
        let again = api
            .send_with("POST", &lines, Some(body.clone()), &key)
            .await;
        assert_eq!((again.status, &again.body), (200, &first.body));
        assert_eq!(again.headers["idempotent-replayed"], "true");
        let before = app.log_size().await;
        let notes = api
            .get(&format!("/api/v1/clients/{}/notes", client.id))
            .await;
        assert_eq!(
            (&notes.body["revision"], &notes.body["text"]),
            (&json!(1), &json!("Called about proofs."))
        );
        // The key with another line, or on another record, is refused and writes nothing.
        let r = api
            .send_with("POST", &lines, Some(json!({"text": "Other."})), &key)
            .await;
        assert_eq!((r.status, problem_type(&r)), (422, "idempotency-mismatch"));
        let r = api
            .send_with(
                "POST",
                &format!("/api/v1/clients/{}/notes/lines", other.id),
                Some(body.clone()),
                &key,
            )
            .await;
        assert_eq!((r.status, problem_type(&r)), (422, "idempotency-mismatch"));
        assert_eq!(app.log_size().await, before);
        // Without a key, sending twice adds twice: that is what the key is for.
        for _ in 0..2 {
            let r = api.send("POST", &lines, Some(body.clone())).await;
            assert_eq!(r.status, 200);
        }
        let notes = api
            .get(&format!("/api/v1/clients/{}/notes", client.id))
            .await;
        assert_eq!(notes.body["revision"], 3);
    }
);

both!(a_line_added_over_http_needs_no_base_revision, |app| {
    let api = Api::new(&app).with_token("sam").await;
    let client = app.client("Smith").await;
    let notes = format!("/api/v1/clients/{}/notes", client.id);
    let lines = format!("{notes}/lines");
    let r = api
        .send(
            "PUT",
            &notes,
            Some(json!({"text": "First.", "base_revision": 0})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .send(
            "POST",
            &lines,
            Some(json!({"text": "Called.", "stamp": false})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (
            200,
            &json!({"revision": 2, "text": "First.\nCalled.", "changed": true})
        )
    );
    // Stamped by default, with the caller's initials.
    let r = api
        .send("POST", &lines, Some(json!({"text": "Booked ordering."})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("First.\nCalled.\n") && text.ends_with(" SS – Booked ordering."),
        "{text:?}"
    );
    assert_eq!(api.get(&notes).await.body["revision"], 3);

    let fields_of = |r: &Reply| -> Vec<String> {
        r.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (body, field) in [
        (json!({"text": "  "}), "text"),
        (json!({}), "text"),
        (json!({"text": 7}), "text"),
        (json!({"text": "x", "stamp": "yes"}), "stamp"),
        (json!({"text": "x", "base_revision": 3}), "base_revision"),
    ] {
        let r = api.send("POST", &lines, Some(body.clone())).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(fields_of(&r), [field], "{body}");
    }
    let r = api
        .send(
            "POST",
            "/api/v1/clients/999999/notes/lines",
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(api.get(&notes).await.body["revision"], 3);
});

both!(notes_read_and_save_over_http, |app| {
    let api = Api::new(&app).with_token("owner").await;
    let client = app.client("Smith").await;
    let path = format!("/api/v1/clients/{}/notes", client.id);
    let r = api.get(&path).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"revision": 0, "text": ""}))
    );
    assert_eq!(api.get("/api/v1/clients/999999/notes").await.status, 404);

    // The answer is the text as stored: Windows line ends become plain ones.
    let save = |text: &str, base: i64| {
        let api = api.clone();
        let path = path.clone();
        let body = json!({"text": text, "base_revision": base});
        async move { api.send("PUT", &path, Some(body)).await }
    };
    let r = save("Prefers mornings\r\nBring the dog", 0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"revision": 1, "text": "Prefers mornings\nBring the dog", "changed": true})
    );
    let r = api.get(&path).await;
    assert_eq!(
        (&r.body["revision"], &r.body["text"]),
        (&json!(1), &json!("Prefers mornings\nBring the dog"))
    );
    assert_eq!(r.body["author"]["initials"], "OO");

    // Saving the same text again changes nothing and names the revision it matched.
    let r = save("Prefers mornings\nBring the dog", 1).await;
    assert_eq!(
        r.body,
        json!({"revision": 1, "text": "Prefers mornings\nBring the dog", "changed": false})
    );

    // A save from a stale revision gets the colleague's text back, not an overwrite.
    let r = save("Prefers evenings", 0).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["current"]["revision"], 1);
    assert_eq!(r.body["current"]["text"], "Prefers mornings\nBring the dog");
    let r = save("Prefers mornings\nBring the dog\nBlue backdrop", 1).await;
    assert_eq!(
        (r.body["revision"].clone(), r.body["changed"].clone()),
        (json!(2), json!(true))
    );
});
