//! Filters and keyset pages over the log.

use keeptrack::{
    audit::{self, Cursor, Query},
    domain::{
        audit::{Action, Category},
        record::RecordKind,
    },
    ledger::{Command, Context},
};
use serde_json::json;

use crate::both;

both!(filters_and_pages, |app| {
    let a = app.client("Able").await;
    let b = app.client("Baker").await;
    for n in 0..7 {
        app.update(
            RecordKind::Client,
            a.id,
            json!({"city": format!("City {n}")}),
        )
        .await
        .unwrap();
    }
    app.submit(
        Context::user(app.manager).with_reason("Moved"),
        Command::Update {
            kind: RecordKind::Client,
            id: b.id,
            fields: crate::helpers::fields(json!({"city": "Kent"})),
            expected_version: None,
        },
    )
    .await
    .unwrap();

    let by_record = Query {
        record_type: Some(RecordKind::Client),
        record_id: Some(a.id),
        limit: 100,
        ..Default::default()
    };
    let entries = audit::list(&app.db, &by_record).await.unwrap().entries;
    assert_eq!(entries.len(), 8);
    assert!(entries.windows(2).all(|w| w[0].i > w[1].i), "newest first");

    let by_actor = Query {
        actor_id: Some(app.manager),
        limit: 100,
        ..Default::default()
    };
    let entries = audit::list(&app.db, &by_actor).await.unwrap().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].rec.as_ref().unwrap().id, b.id);

    let creates = Query {
        category: Some(Category::Clients),
        action: Some(Action::Create),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        audit::list(&app.db, &creates).await.unwrap().entries.len(),
        2
    );

    // Pages of 3 cover the record's 8 entries exactly once.
    let mut seen = Vec::new();
    let mut q = Query {
        limit: 3,
        ..by_record.clone()
    };
    loop {
        let page = audit::list(&app.db, &q).await.unwrap();
        seen.extend(page.entries.iter().map(|e| e.i));
        match page.next {
            Some(next) => q.cursor = Some(Cursor::parse(&next).unwrap()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    sorted.dedup();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 8);

    // A time window that ends before everything finds nothing.
    let early = Query {
        to: Some(jiff::Timestamp::UNIX_EPOCH),
        limit: 10,
        ..Default::default()
    };
    assert!(
        audit::list(&app.db, &early)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
});

both!(entries_are_stored_as_canonical_bytes, |app| {
    let client = app.client("Smith").await;
    let rows = keeptrack::store::audit_log::query(
        &app.db,
        &keeptrack::store::audit_log::Filter {
            record_id: Some(client.id),
            record_type: Some("client".into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bytes = &rows[0].bytes;
    let entry = keeptrack::domain::audit::Entry::from_bytes(bytes).unwrap();
    assert_eq!(&entry.to_canonical_bytes(), bytes);
    assert_eq!(entry.i, rows[0].idx);
});

both!(exports_match_the_log, |app| {
    let client = app.client("Smith, \"Jr\"").await;
    app.update(RecordKind::Client, client.id, json!({"city": "=cmd|calc"}))
        .await
        .unwrap();
    let all = Query {
        limit: 1000,
        ..Default::default()
    };
    let listed = audit::list(&app.db, &all).await.unwrap().entries;
    let mut jsonl = Vec::new();
    let n = keeptrack::audit::export::export(
        &app.db,
        &all,
        keeptrack::audit::export::Format::Jsonl,
        &mut jsonl,
    )
    .await
    .unwrap();
    assert_eq!(n as usize, listed.len());
    let lines: Vec<keeptrack::domain::audit::Entry> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| keeptrack::domain::audit::Entry::from_bytes(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(lines, listed);
    let mut csv = Vec::new();
    let by_record = Query {
        record_type: Some(RecordKind::Client),
        record_id: Some(client.id),
        limit: 10,
        ..Default::default()
    };
    keeptrack::audit::export::export(
        &app.db,
        &by_record,
        keeptrack::audit::export::Format::Csv,
        &mut csv,
    )
    .await
    .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("index,time_utc,category,action,"), "{csv}");
    assert!(
        csv.contains("\"Client #1001 Jane Smith, \"\"Jr\"\"\""),
        "{csv}"
    );
    // A value that looks like a formula is defused.
    assert!(csv.contains("city: null → \"\"=cmd|calc\"\""), "{csv}");
    assert!(!csv.contains(",=cmd"), "{csv}");
});
