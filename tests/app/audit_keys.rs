//! The query keys the writer copies behind the log: queries see every entry whether its
//! keys are copied yet or not, an idle writer copies the rest, and verify finds a key
//! that lies.

use keeptrack::{
    audit::{self, Cursor, Query},
    domain::{
        audit::{Action, Category},
        record::RecordKind,
    },
    store::{Db, audit_log},
};
use serde_json::json;

use crate::both;
use crate::helpers::{TestApp, drop_guards, exec, keyed, until_all_keyed, verify_now};

/// Which rows of the log a query should answer.
type Wanted<'a> = Box<dyn Fn(&audit_log::Row) -> bool + 'a>;

/// Every filter answers exactly the entries whose columns match, newest first, and
/// pages of 7 put together give the same list.
async fn every_filter_finds_what_the_log_holds(app: &TestApp, a: i64) {
    let size = audit_log::size(&app.db).await.unwrap();
    let rows = audit_log::rows(&app.db, 0, size, size).await.unwrap();
    let (from, to) = (rows[100].ts, rows[250].ts);
    let at = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap();
    let filters: Vec<(Query, Wanted)> = vec![
        (Query::default(), Box::new(|_| true)),
        (
            Query {
                record_type: Some(RecordKind::Client),
                record_id: Some(a),
                ..Default::default()
            },
            Box::new(move |r| r.record_type.as_deref() == Some("client") && r.record_id == Some(a)),
        ),
        (
            Query {
                actor_id: Some(app.manager),
                ..Default::default()
            },
            Box::new(|r| r.actor_id == Some(app.manager)),
        ),
        (
            Query {
                category: Some(Category::Clients),
                action: Some(Action::Update),
                ..Default::default()
            },
            Box::new(|r| r.category == "clients" && r.action == "update"),
        ),
        (
            Query {
                from: Some(at(from)),
                to: Some(at(to)),
                actor_id: Some(app.staff),
                ..Default::default()
            },
            Box::new(move |r| r.ts >= from && r.ts < to && r.actor_id == Some(app.staff)),
        ),
    ];
    for (query, wanted) in filters {
        let mut expected: Vec<i64> = rows.iter().filter(|r| wanted(r)).map(|r| r.idx).collect();
        expected.reverse();
        assert!(!expected.is_empty(), "{query:?} should find entries");
        let all = Query {
            limit: 1000,
            ..query.clone()
        };
        let found: Vec<i64> = audit::list(&app.db, &all)
            .await
            .unwrap()
            .entries
            .iter()
            .map(|e| e.i)
            .collect();
        assert_eq!(found, expected, "{query:?}");
        let mut paged = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = Query {
                limit: 7,
                cursor,
                ..query.clone()
            };
            let page = audit::list(&app.db, &page).await.unwrap();
            paged.extend(page.entries.iter().map(|e| e.i));
            match page.next {
                Some(next) => cursor = Cursor::parse(&next),
                None => break,
            }
        }
        assert_eq!(paged, expected, "pages of {query:?}");
    }
}

both!(
    queries_see_every_entry_before_and_after_its_keys_are_copied,
    |app| {
        let a = app.client("Able").await;
        let b = app.client("Baker").await;
        for n in 0..300 {
            let who = if n % 3 == 0 { app.manager } else { app.staff };
            let id = if n % 2 == 0 { a.id } else { b.id };
            app.update_by(
                who,
                RecordKind::Client,
                id,
                json!({"city": format!("City {n}")}),
            )
            .await
            .unwrap();
        }
        // More than 256 entries: a batch has asked for keys to be copied (on SQLite, on
        // a thread of their own after the commit); the newest may still wait.
        let (keys, entries) = keyed(&app.db).await;
        assert!(keys <= entries, "{keys} of {entries} keyed");
        every_filter_finds_what_the_log_holds(&app, a.id).await;
        until_all_keyed(&app.db).await;
        every_filter_finds_what_the_log_holds(&app, a.id).await;
        assert!(verify_now(&app.db).await.findings.is_empty());
    }
);

both!(verify_finds_a_query_key_that_lies_or_is_gone, |app| {
    let a = app.client("Able").await;
    for n in 0..5 {
        app.update(
            RecordKind::Client,
            a.id,
            json!({"city": format!("City {n}")}),
        )
        .await
        .unwrap();
    }
    until_all_keyed(&app.db).await;
    assert!(verify_now(&app.db).await.findings.is_empty());
    drop_guards(&app.db).await;

    // Someone moves an entry to another actor in the keys only: a query by the real
    // actor would no longer show it.
    exec(
        &app.db,
        "UPDATE audit_keys SET actor_id = 999 WHERE idx = 3",
    )
    .await;
    let report = verify_now(&app.db).await;
    assert_eq!(report.findings.len(), 1, "{report:?}");
    assert_eq!(report.findings[0].index, Some(3));
    assert!(report.findings[0].detail.contains("query keys"));

    exec(&app.db, "DELETE FROM audit_keys WHERE idx = 2").await;
    let report = verify_now(&app.db).await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.detail.contains("query keys of 1 entries") && f.index.is_none()),
        "{report:?}"
    );

    // A key for an entry the log does not have, past its end: keys newer than the
    // entries verify read are judged only there, by the log's end read after them.
    let size = app.log_size().await;
    exec(
        &app.db,
        &format!(
            "INSERT INTO audit_keys (idx, ts, category, action) \
             VALUES ({}, 0, 'Clients', 'Modify')",
            size + 5
        ),
    )
    .await;
    let report = verify_now(&app.db).await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.index == Some(size + 5) && f.detail.contains("no entry")),
        "{report:?}"
    );
});

/// On SQLite the keys live in a file of their own beside the database, made from the log:
/// beside a database restored from a backup, newer keys give way and are made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_beside_a_restored_backup_are_made_again_from_its_log() {
    let app = TestApp::sqlite().await;
    app.client("Able").await;
    until_all_keyed(&app.db).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("old.db");
    app.db.backup_into(&backup).await.unwrap();
    app.client("Baker").await;
    app.client("Charlie").await;
    until_all_keyed(&app.db).await;
    // A restore in place leaves the newer keys beside the older database.
    let newer_keys = format!("{}-keys", backup.display());
    exec(&app.db, &format!("VACUUM keys INTO '{newer_keys}'")).await;

    let restored = Db::open(&format!("sqlite://{}", backup.display()))
        .await
        .unwrap();
    let (keys, entries) = keyed(&restored).await;
    assert!(keys < entries, "{keys} keys kept for {entries} entries");
    let _ledger = keeptrack::ledger::Ledger::start(restored.clone())
        .await
        .unwrap();
    until_all_keyed(&restored).await;
    let report = verify_now(&restored).await;
    assert!(report.findings.is_empty(), "{report:?}");
}
