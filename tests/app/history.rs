//! A record's history in one place, and the record as it was at any moment.

use keeptrack::{
    audit::history::{self, Item},
    clock,
    domain::record::RecordKind,
    ledger::{Command, Context},
};
use serde_json::json;

use crate::both;

both!(one_timeline_newest_first_in_pages, |app| {
    let client = app.client("Smith").await;
    app.submit(
        Context::user(app.staff),
        Command::SaveNotes {
            kind: RecordKind::Client,
            id: client.id,
            text: "Hello".into(),
            base_revision: 0,
        },
    )
    .await
    .unwrap();
    let prospect = app.list_id("client_status", "Prospect").await;
    app.update(
        RecordKind::Client,
        client.id,
        json!({"client_status_id": prospect}),
    )
    .await
    .unwrap();
    app.update(RecordKind::Client, client.id, json!({"email": "b@x.com"}))
        .await
        .unwrap();
    // One change that writes an entry, a status note and a notes line at the same moment.
    let active = app.list_id("client_status", "Active Client").await;
    app.update(
        RecordKind::Client,
        client.id,
        json!({"client_status_id": active, "email": "c@x.com"}),
    )
    .await
    .unwrap();

    let all = history::timeline(&app.db, RecordKind::Client, client.id, None, 100)
        .await
        .unwrap();
    let kinds: Vec<&str> = all
        .items
        .iter()
        .map(|i| match i {
            Item::Audit { .. } => "audit",
            Item::StatusNote { .. } => "status",
            Item::Notes { .. } => "notes",
        })
        .collect();
    // Newest first: the status and email change (entry, status note, the reason line in
    // the notes), the email change (entry, reason line), the status change (entry, status
    // note), the notes save (entry, revision), the create.
    assert_eq!(
        kinds,
        [
            "audit", "status", "notes", "audit", "notes", "audit", "status", "audit", "notes",
            "audit"
        ]
    );
    let moments: Vec<i64> = all.items[..3]
        .iter()
        .map(|i| match i {
            Item::Audit { ts, .. } | Item::StatusNote { ts, .. } | Item::Notes { ts, .. } => *ts,
        })
        .collect();
    assert!(moments.iter().all(|t| *t == moments[0]), "{moments:?}");
    match &all.items[4] {
        Item::Notes {
            change, revision, ..
        } => {
            assert_eq!(*revision, 2);
            assert!(change.removed.is_empty());
            let added = &change.added;
            assert!(
                added[0].ends_with(
                    "Email: jane@example.com → b@x.com. Reason: Requested by the client"
                ),
                "{added:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Pages of any size give the same items in the same order, also when a page ends
    // between the entry, status note and revision one change wrote at the same moment.
    let whole: Vec<_> = all
        .items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap())
        .collect();
    for size in 1..=3 {
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = history::timeline(
                &app.db,
                RecordKind::Client,
                client.id,
                cursor.as_deref(),
                size,
            )
            .await
            .unwrap();
            paged.extend(
                page.items
                    .into_iter()
                    .map(|i| serde_json::to_string(&i).unwrap()),
            );
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(paged, whole, "pages of {size}");
    }
});

both!(as_of_equals_what_a_reader_saw_then, |app| {
    let client = app.client("Smith").await;
    let mut seen = vec![(clock::now(), app.get(RecordKind::Client, client.id).await)];
    for change in [
        json!({"city": "Akron"}),
        json!({"email": "b@x.com", "city": "Kent"}),
        json!({"first_name": "Janet"}),
    ] {
        app.update(RecordKind::Client, client.id, change)
            .await
            .unwrap();
        seen.push((clock::now(), app.get(RecordKind::Client, client.id).await));
    }
    app.submit(
        Context::user(app.owner).with_reason("Duplicate"),
        Command::Delete {
            kind: RecordKind::Client,
            id: client.id,
            expected_version: None,
        },
    )
    .await
    .unwrap();
    seen.push((clock::now(), app.get(RecordKind::Client, client.id).await));
    for (at, record) in &seen {
        let state = history::as_of(&app.db, RecordKind::Client, client.id, *at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&state.fields, &record.fields);
        assert_eq!(state.deleted, record.is_deleted());
    }
    let before_it_existed = jiff::Timestamp::UNIX_EPOCH;
    assert!(
        history::as_of(&app.db, RecordKind::Client, client.id, before_it_existed)
            .await
            .unwrap()
            .is_none()
    );
});
