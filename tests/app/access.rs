//! The access-control matrix: routes × who asks, each with the status a studio owner
//! would expect; denials are on record. Plus what ends a session.

use keeptrack::domain::{audit::Action, record::RecordKind};
use serde_json::{Value, json};

use crate::both;
use crate::helpers::{TestApp, exec};
use crate::http::{Api, PASSWORD};

/// Who asks, in the matrix's column order.
const WHO: [&str; 7] = [
    "anonymous",
    "staff",
    "manager",
    "owner",
    "revoked token",
    "expired session",
    "foreign origin",
];

async fn callers(app: &TestApp) -> Vec<Api> {
    let api = Api::new(app);
    let revoked = api.with_token("sam").await;
    let me = revoked.get("/api/v1/session").await;
    let id = me.body["token_id"].as_i64().unwrap();
    assert_eq!(
        revoked
            .send("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await
            .status,
        204
    );
    app.add_user("eve", "Eve Expired", "EE", "owner").await;
    let expired = api.sign_in("eve").await;
    exec(
        &app.db,
        "UPDATE auth_sessions SET expires_at = 1 WHERE user_id = \
         (SELECT id FROM users WHERE username = 'eve')",
    )
    .await;
    // A manager's browser session, but the change comes from another site.
    let foreign = api
        .sign_in("mary")
        .await
        .with_header("origin", "https://evil.example");
    vec![
        api.clone(),
        api.with_token("sam").await,
        api.with_token("mary").await,
        api.with_token("owner").await,
        revoked,
        expired,
        foreign,
    ]
}

both!(every_route_answers_each_caller_as_expected, |app| {
    let callers = callers(&app).await;
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    app.submit(
        keeptrack::ledger::Context::user(app.manager),
        keeptrack::ledger::Command::Post {
            kind: RecordKind::Invoice,
            id: invoice.id,
        },
    )
    .await
    .unwrap();
    let c = format!("/api/v1/clients/{}", client.id);
    let inv = format!("/api/v1/invoices/{}", invoice.id);
    let staff_user = format!("/api/v1/users/{}", app.staff);
    // (method, path, body, expected per WHO). Changes that would alter what later rows
    // see are written so they can be repeated (the same value, or a fresh record).
    let rows: Vec<(&str, String, Option<Value>, [u16; 7])> = vec![
        ("GET", "/healthz".into(), None, [200; 7]),
        ("GET", "/api/openapi.json".into(), None, [200; 7]),
        (
            "GET",
            "/api/v1/session".into(),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
        (
            "GET",
            "/api/v1/clients".into(),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
        ("GET", c.clone(), None, [401, 200, 200, 200, 401, 401, 200]),
        (
            "GET",
            format!("{c}/history"),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
        (
            "GET",
            format!("{c}/notes"),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
        (
            "POST",
            format!("{c}/notes/lines"),
            Some(json!({"text": "Called."})),
            [401, 200, 200, 200, 401, 401, 403],
        ),
        (
            "POST",
            "/api/v1/clients".into(),
            Some(json!({"last_name": "Jones"})),
            [401, 201, 201, 201, 401, 401, 403],
        ),
        (
            "PATCH",
            c.clone(),
            Some(json!({"first_name": "Jane"})),
            [401, 200, 200, 200, 401, 401, 403],
        ),
        (
            "DELETE",
            c.clone(),
            Some(json!({"reason": "test"})),
            [401, 403, 409, 409, 401, 401, 403],
        ),
        (
            "POST",
            format!("{inv}/unlock"),
            Some(json!({"reason": "test"})),
            [401, 403, 200, 200, 401, 401, 403],
        ),
        (
            "GET",
            "/api/v1/audit".into(),
            None,
            [401, 403, 200, 200, 401, 401, 200],
        ),
        (
            "GET",
            "/api/v1/checkpoints".into(),
            None,
            [401, 403, 200, 200, 401, 401, 200],
        ),
        (
            "GET",
            "/api/v1/preferences".into(),
            None,
            [401, 403, 200, 200, 401, 401, 200],
        ),
        (
            "PUT",
            "/api/v1/preferences/studio.stamp_format".into(),
            Some(json!({"value": "us"})),
            [401, 403, 200, 200, 401, 401, 403],
        ),
        (
            "GET",
            "/api/v1/users".into(),
            None,
            [401, 403, 403, 200, 401, 401, 403],
        ),
        (
            "GET",
            staff_user.clone(),
            None,
            [401, 403, 403, 200, 401, 401, 403],
        ),
        (
            "PATCH",
            staff_user.clone(),
            Some(json!({"display_name": "Sam Staff"})),
            [401, 403, 403, 200, 401, 401, 403],
        ),
        (
            "GET",
            "/api/v1/security_groups".into(),
            None,
            [401, 403, 403, 200, 401, 401, 403],
        ),
        (
            "GET",
            "/api/v1/lists".into(),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
        (
            "GET",
            "/api/v1/tokens".into(),
            None,
            [401, 200, 200, 200, 401, 401, 200],
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, want) in &rows {
        for (who, (caller, want)) in WHO.iter().zip(callers.iter().zip(want)) {
            let r = caller
                .send_with(method, path, body.clone(), &[("if-match", "*")])
                .await;
            if r.status != *want {
                wrong.push(format!(
                    "{method} {path} as {who}: {} not {want} ({})",
                    r.status, r.body["detail"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Denials are on record: staff reading the audit log, the manager reading users.
    let denials: Vec<_> = app
        .latest(500)
        .await
        .into_iter()
        .filter(|e| e.act == Action::Denied)
        .map(|e| (e.actor.initials, e.sec.unwrap().permission.unwrap()))
        .collect();
    for expected in [
        ("SS", "audit_logs:view"),
        ("SS", "clients:delete"),
        ("MKH", "users_and_security:view"),
    ] {
        assert!(
            denials
                .iter()
                .any(|(i, p)| (i.as_str(), p.as_str()) == expected),
            "{expected:?} in {denials:?}"
        );
    }
    // ... but not once per request: repeats within a minute are not.
    let staff_audit = denials
        .iter()
        .filter(|(i, p)| i == "SS" && p == "audit_logs:view")
        .count();
    assert_eq!(staff_audit, 1);
});

both!(a_new_password_or_deactivation_ends_every_session, |app| {
    let api = Api::new(&app);
    let sam = api.sign_in("sam").await;
    let sam_elsewhere = api.sign_in("sam").await;
    let owner = api.with_token("owner").await;
    // A user changes their own password: they must know the current one.
    let path = format!("/api/v1/users/{}/password", app.staff);
    let r = sam
        .send(
            "PUT",
            &path,
            Some(json!({"password": "a much better one", "current_password": "nope"})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = sam
        .send(
            "PUT",
            &path,
            Some(json!({"password": "a much better one", "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(app.latest(1).await[0].act, Action::Password);
    assert_eq!(sam.get("/api/v1/session").await.status, 401);
    assert_eq!(sam_elsewhere.get("/api/v1/session").await.status, 401);
    // New groups start with no access; the owner grants exactly what is needed.
    let (group, fran_id) = owner.new_group_with_fran("front_desk").await;
    let fran = api.sign_in("fran").await;
    assert_eq!(fran.get("/api/v1/clients").await.status, 403);
    owner.grant(group, json!({"clients": "view"})).await;
    assert_eq!(fran.get("/api/v1/clients").await.status, 200);
    let r = fran
        .send("POST", "/api/v1/clients", Some(json!({"last_name": "X"})))
        .await;
    assert_eq!(r.status, 403);
    // A group with members cannot be deleted.
    let r = owner
        .send(
            "DELETE",
            &format!("/api/v1/security_groups/{group}"),
            Some(json!({"reason": "tidy"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Deactivating a user ends their sessions at once.
    owner.deactivate(fran_id).await;
    assert_eq!(fran.get("/api/v1/clients").await.status, 401);
    let r = api
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "fran", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 401);
});
