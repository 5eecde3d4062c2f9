//! Changes that need a reason: refused without one; with one, logged and written into
//! the record's notes as a stamped line.

use keeptrack::{
    domain::{note, record::RecordKind},
    ledger::{Command, Context, Error},
    store,
};
use serde_json::json;

use crate::both;

fn email(id: i64, to: &str) -> Command {
    Command::Update {
        kind: RecordKind::Client,
        id,
        fields: crate::helpers::fields(json!({"email": to})),
        expected_version: None,
    }
}

both!(a_change_that_needs_a_reason_is_refused_without_one, |app| {
    let client = app.client("Smith").await;
    let before = app.log_size().await;
    let err = app
        .submit(Context::user(app.manager), email(client.id, "new@x.com"))
        .await
        .unwrap_err();
    match &err {
        Error::ReasonRequired { rules } => assert_eq!(rules[0].as_str(), "client_email"),
        other => panic!("expected a reason to be required, got {other}"),
    }
    assert!(err.to_string().contains("a reason is needed"));
    assert_eq!(app.log_size().await, before);
    assert_eq!(
        app.get(RecordKind::Client, client.id).await.fields["email"],
        "jane@example.com"
    );
    for (kind, id, command) in [(
        RecordKind::Client,
        client.id,
        Command::Delete {
            kind: RecordKind::Client,
            id: client.id,
            expected_version: None,
        },
    )] {
        let err = app
            .submit(Context::user(app.owner), command)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::ReasonRequired { .. }),
            "{kind} {id}: {err}"
        );
    }
});

both!(the_reason_is_logged_and_stamped_into_the_notes, |app| {
    app.submit(
        Context::user(app.owner),
        Command::SetPreference {
            key: "studio.time_zone".into(),
            value: "America/New_York".into(),
        },
    )
    .await
    .unwrap();
    let client = app.client("Smith").await;
    app.submit(
        Context::user(app.staff),
        Command::SaveNotes {
            kind: RecordKind::Client,
            id: client.id,
            text: "Prefers email.".into(),
            base_revision: 0,
        },
    )
    .await
    .unwrap();
    app.submit(
        Context::user(app.manager).with_reason("Client requested change 10/7/2018"),
        email(client.id, "new@x.com"),
    )
    .await
    .unwrap();
    let entry = &app.latest(1).await[0];
    assert_eq!(
        entry.reason.as_deref(),
        Some("Client requested change 10/7/2018")
    );
    let notes = app.notes(RecordKind::Client, client.id).await;
    let (first, line) = notes.text.split_once('\n').unwrap();
    assert_eq!(first, "Prefers email.");
    let (stamp, text) = line.split_once(" – ").unwrap();
    assert!(
        stamp.ends_with(" MKH") && (stamp.contains(" AM") || stamp.contains(" PM")),
        "{stamp}"
    );
    assert_eq!(
        text,
        "Email: jane@example.com → new@x.com. Reason: Client requested change 10/7/2018"
    );
    assert_eq!(notes.author.initials, "MKH");
});

both!(the_policy_is_a_preference, |app| {
    let client = app.client("Smith").await;
    let err = app
        .submit(
            Context::user(app.owner),
            Command::SetPreference {
                key: "reasons.required".into(),
                value: "delete,bogus".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    app.submit(
        Context::user(app.owner),
        Command::SetPreference {
            key: "reasons.required".into(),
            value: "delete, restore".into(),
        },
    )
    .await
    .unwrap();
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.diff[0].field, "reasons.required");
    app.submit(Context::user(app.manager), email(client.id, "new@x.com"))
        .await
        .unwrap();
    assert!(
        store::notes::latest(&app.db, RecordKind::Client, client.id)
            .await
            .unwrap()
            .is_none()
    );
});

both!(price_date_and_payment_overrides_need_reasons, |app| {
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    let cases = [
        json!({"lines": [{"item": "8x10 print", "qty": 2, "unit_cents": 2000}]}),
        json!({"invoice_date": "2020-01-01"}),
        json!({"discount_cents": 500, "discount_reason": "Coupon"}),
    ];
    for fields in cases {
        let command = Command::Update {
            kind: RecordKind::Invoice,
            id: invoice.id,
            fields: crate::helpers::fields(fields.clone()),
            expected_version: None,
        };
        let err = app
            .submit(Context::user(app.manager), command)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::ReasonRequired { .. }),
            "{fields}: {err}"
        );
    }
    // Adding a line is not a price override.
    let more = json!({"lines": [{"item": "8x10 print", "qty": 2, "unit_cents": 2500}, {"item": "Frame", "qty": 1, "unit_cents": 900}]});
    app.submit(
        Context::user(app.manager),
        Command::Update {
            kind: RecordKind::Invoice,
            id: invoice.id,
            fields: crate::helpers::fields(more),
            expected_version: None,
        },
    )
    .await
    .unwrap();
    let payment = app.payment(invoice.id, 5000).await;
    let err = app
        .submit(
            Context::user(app.manager),
            Command::VoidPayment { id: payment.id },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReasonRequired { .. }), "{err}");
});

both!(a_stamped_reason_goes_on_a_line_of_its_own, |app| {
    // Empty notes, notes without a final line end, notes with one: the stamp is the
    // notes, or follows on a new line, never after a blank one.
    for (i, old) in ["", "Prefers email.", "Prefers email.\n"]
        .into_iter()
        .enumerate()
    {
        let client = app.client(&format!("Smith{i}")).await;
        if !old.is_empty() {
            app.submit(
                Context::user(app.staff),
                Command::SaveNotes {
                    kind: RecordKind::Client,
                    id: client.id,
                    text: old.into(),
                    base_revision: 0,
                },
            )
            .await
            .unwrap();
        }
        app.submit(
            Context::user(app.manager).with_reason("Requested by the client"),
            email(client.id, &format!("new{i}@x.com")),
        )
        .await
        .unwrap();
        let notes = app.notes(RecordKind::Client, client.id).await;
        let line = notes.text.rsplit('\n').next().unwrap();
        assert!(line.ends_with("Reason: Requested by the client"), "{line}");
        let expected = match old {
            "" => line.to_owned(),
            _ => format!("Prefers email.\n{line}"),
        };
        assert_eq!(notes.text, expected);
        assert_eq!(notes.text, note::append_line(old, line));
        assert_eq!(notes.revision, if old.is_empty() { 1 } else { 2 });
        assert_eq!(notes.author.initials, "MKH");
    }
});

// On PostgreSQL a stamped reason, a change's update and an appended line are held back
// to go with the batch's next statement, and the lines appended to notes read ahead:
// changes and plain notes lines to the same clients, submitted at once so that they
// share batches, must still each get a version or a revision of their own, in order,
// losing none, and each answer what was stored.
both!(
    reasons_stamped_by_changes_at_once_each_get_a_revision,
    |app| {
        let clients = [
            app.client("Smith").await.id,
            app.client("Jones").await.id,
            app.client("Brown").await.id,
        ];
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..36 {
            // In pairs: a change stamping its reason, then a line read back, to one client.
            let (ledger, manager, id) = (app.ledger.clone(), app.manager, clients[i / 2 % 3]);
            writes.spawn(async move {
                let (ctx, command) = match i % 2 {
                    0 => (
                        Context::user(manager).with_reason(format!("R{i}")),
                        email(id, &format!("c{i}@x.com")),
                    ),
                    _ => (
                        Context::user(manager),
                        Command::AppendNotes {
                            kind: RecordKind::Client,
                            id,
                            text: format!("L{i}"),
                            stamp: false,
                        },
                    ),
                };
                (i, ledger.submit(ctx, command).await.unwrap())
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = writes.join_next().await {
            answers.push(done.unwrap());
        }
        answers.sort_by_key(|(i, _)| *i);
        // None failed part-way, so no batch had to run again with savepoints (where
        // nothing is held back).
        assert_eq!(app.ledger.batches_retried(), 0);
        for (c, id) in clients.into_iter().enumerate() {
            let revisions = store::notes::revisions(&app.db, RecordKind::Client, id, None, 100)
                .await
                .unwrap();
            let numbers: Vec<i64> = revisions.iter().map(|r| r.revision).rev().collect();
            assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "client {c}");
            // Each revision is the one before with one line more.
            for pair in revisions.windows(2) {
                let (newer, older) = (&pair[0].text, &pair[1].text);
                assert!(
                    newer.starts_with(&format!("{older}\n")),
                    "{older:?} → {newer:?}"
                );
            }
            let lines: Vec<&str> = revisions[0].text.lines().collect();
            assert_eq!(lines.len(), 12, "client {c}: {lines:?}");
            // Each change made a version, and each line answered its revision as stored.
            let mine = || answers.iter().filter(move |(i, _)| i / 2 % 3 == c);
            let mut versions: Vec<i64> = mine()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, out)| out.record.as_ref().unwrap().version)
                .collect();
            versions.sort_unstable();
            assert_eq!(versions, (2..=7).collect::<Vec<_>>(), "client {c}");
            let stored = app.get(RecordKind::Client, id).await;
            assert_eq!(stored.version, 7, "client {c}");
            let last = mine().filter(|(i, _)| i % 2 == 0).find_map(|(i, out)| {
                (out.record.as_ref()?.version == 7).then(|| format!("c{i}@x.com"))
            });
            assert_eq!(stored.fields["email"].as_str(), last.as_deref());
            for (i, out) in mine().filter(|(i, _)| i % 2 == 1) {
                let number = out.notes_revision.unwrap();
                let revision = revisions.iter().find(|r| r.revision == number).unwrap();
                assert_eq!(out.notes_text.as_ref(), Some(&revision.text), "write {i}");
                assert!(revision.text.ends_with(&format!("L{i}")), "write {i}");
            }
            for i in (0..36).filter(|i| i / 2 % 3 == c) {
                let wanted = match i % 2 {
                    0 => format!("Reason: R{i}"),
                    _ => format!("L{i}"),
                };
                assert_eq!(
                    lines.iter().filter(|l| l.ends_with(&wanted)).count(),
                    1,
                    "client {c}, write {i}: {lines:?}"
                );
            }
        }
    }
);

// What looks like SQL or an escape in a reason (stamped into the notes, held back on
// PostgreSQL to go with another statement) comes back exactly as written, and the
// entry that carries it verifies.
both!(a_reason_that_looks_like_sql_is_stored_as_written, |app| {
    let client = app.client("Smith").await;
    let reason = r#"O'Brien said \'; DROP TABLE clients; -- $1 E'\x00' "quoted" – ünïcode ✓"#;
    app.submit(
        Context::user(app.manager).with_reason(reason),
        email(client.id, "o'brien@x.com"),
    )
    .await
    .unwrap();
    let notes = app.notes(RecordKind::Client, client.id).await;
    assert!(
        notes.text.ends_with(&format!(
            "Email: jane@example.com → o'brien@x.com. Reason: {reason}"
        )),
        "{}",
        notes.text
    );
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.reason.as_deref(), Some(reason));
    assert_eq!(
        app.get(RecordKind::Client, client.id).await.fields["email"],
        "o'brien@x.com"
    );
    let report = crate::helpers::verify_now(&app.db).await;
    assert!(report.findings.is_empty(), "{report:?}");
});
