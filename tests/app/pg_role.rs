//! PostgreSQL: the whole product runs as a role with the grants of
//! docs/postgres-role.sql, and that role cannot rewrite the log by any SQL of its own.

use keeptrack::{
    audit::checkpoint::create_key_files,
    store::{self, Db},
};
use serde_json::json;

use crate::helpers::{TestApp, new_database_url, run_cli, verify_now};
use crate::http::Api;

/// Runs SQL (any number of statements) as `db`'s role.
async fn run(db: &Db, sql: &str) -> Result<(), String> {
    let Db::Postgres(pool) = db else {
        unreachable!("PostgreSQL only")
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_role_appends_to_the_log_and_cannot_rewrite_it() {
    let Some((owner_url, _)) = new_database_url(true).await else {
        return;
    };
    // The owner migrates and grants; the role is made once per cluster, so it is unique.
    let owner = Db::open(&owner_url).await.unwrap();
    let role = format!("kt_app_{}", std::process::id());
    let grants = include_str!("../../docs/postgres-role.sql").replace("keeptrack_app", &role);
    run(&owner, &format!("CREATE ROLE {role} LOGIN; {grants}"))
        .await
        .unwrap();
    owner.close().await;
    let url = owner_url.replacen("postgres@", &format!("{role}@"), 1);

    // Everything a studio does, as the role: install, users, sign-in (failed and good),
    // tokens, records created, edited, deleted and restored, notes, sign-out.
    let app = TestApp::at(url.clone(), None).await;
    let api = Api::new(&app);
    let bad = api
        .send(
            "POST",
            "/api/v1/session",
            Some(json!({"username": "mary", "password": "wrong"})),
        )
        .await;
    assert_eq!(bad.status, 401);
    let mary = api.with_token("mary").await;
    let r = mary
        .send("POST", "/api/v1/clients", Some(json!({"last_name": "Ng"})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    let path = format!("/api/v1/clients/{id}");
    let r = mary
        .send_with(
            "PATCH",
            &path,
            Some(json!({"email": "ng@example.com", "reason": "new address"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = mary
        .send(
            "PUT",
            &format!("{path}/notes"),
            Some(json!({"text": "Prefers mornings", "base_revision": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = mary
        .send("DELETE", &path, Some(json!({"reason": "duplicate"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = mary
        .send(
            "POST",
            &format!("{path}/restore"),
            Some(json!({"reason": "not a duplicate"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let session = api.sign_in("owner").await;
    assert_eq!(
        session.send("DELETE", "/api/v1/session", None).await.status,
        204
    );

    // The role archives (its one UPDATE of the log) and verifies, by the command.
    let dir = tempfile::tempdir().unwrap();
    let origin = store::preferences::all(&app.db).await.unwrap()["log.origin"].clone();
    create_key_files(&dir.path().join("keeptrack.key"), &origin).unwrap();
    let cli = |args: &[&str]| {
        let out = run_cli(dir.path(), &url, args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), said)
    };
    let now = keeptrack::clock::now().to_string();
    let (code, said) = cli(&["audit", "archive", "--before", &now, "--out", "a.json"]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = cli(&["audit", "verify"]);
    assert!(matches!(code, Some(0 | 3)), "{said}");

    // And it cannot change the log any other way, nor take the guards away.
    let log = [
        "audit_log",
        "audit_tree",
        "checkpoints",
        "status_notes",
        "note_revisions",
        "audit_archive",
    ];
    let mut refused = Vec::new();
    for table in log {
        refused.push(format!("DELETE FROM {table}"));
        refused.push(format!("TRUNCATE {table}"));
        refused.push(format!("ALTER TABLE {table} DISABLE TRIGGER ALL"));
        refused.push(format!("DROP TABLE {table} CASCADE"));
    }
    refused.extend([
        "UPDATE audit_log SET actor_id = 7".to_owned(),
        "UPDATE audit_log SET leaf_hash = leaf_hash".to_owned(),
        "UPDATE audit_tree SET hash = hash".to_owned(),
        "UPDATE status_notes SET body = 'x'".to_owned(),
        "UPDATE note_revisions SET ts = 0".to_owned(),
        "DELETE FROM log_head".to_owned(),
        "DROP FUNCTION keeptrack_append_only() CASCADE".to_owned(),
        "DELETE FROM clients".to_owned(),
    ]);
    for sql in &refused {
        let why = run(&app.db, sql)
            .await
            .expect_err(&format!("the role could run: {sql}"));
        assert!(
            why.contains("permission denied") || why.contains("must be owner"),
            "{sql}: refused by something other than the grants: {why}"
        );
    }
    // The body it may empty, the trigger still guards outside an archive run.
    let why = run(&app.db, "UPDATE audit_log SET entry = ''::bytea")
        .await
        .expect_err("the trigger refuses");
    assert!(why.contains("append-only"), "{why}");
    let report = verify_now(&app.db).await;
    assert!(report.findings.is_empty(), "{report:?}");
}
