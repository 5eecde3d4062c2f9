//! Every change is one audit entry with the right diff; failures write nothing.

use keeptrack::{
    domain::{
        audit::{Action, Category},
        record::RecordKind,
    },
    ledger::{Command, Context, Error},
};
use serde_json::{Value, json};

use crate::both;
use crate::helpers::invalid_fields;

both!(create_logs_one_entry_with_every_field, |app| {
    let before = app.log_size().await;
    let client = app.client("Smith").await;
    assert_eq!(app.log_size().await, before + 1);
    assert_eq!(client.fields["number"], json!(1001));
    assert_eq!(client.version, 1);
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.act, Action::Create);
    assert_eq!(entry.cat, Category::Clients);
    assert_eq!(entry.actor.initials, "SS");
    let rec = entry.rec.as_ref().unwrap();
    assert_eq!((rec.kind.as_str(), rec.id), ("client", client.id));
    assert_eq!(rec.label, "Client #1001 Jane Smith");
    let last = entry.diff.iter().find(|c| c.field == "last_name").unwrap();
    assert_eq!((&last.old, &last.new), (&Value::Null, &json!("Smith")));
    assert_eq!(entry.diff.len(), RecordKind::Client.fields().len());
});

both!(update_logs_exactly_the_changed_fields, |app| {
    let client = app.client("Smith").await;
    let before = app.log_size().await;
    let out = app
        .submit(
            Context::user(app.manager).with_reason("Client requested change 10/7/2018"),
            Command::Update {
                kind: RecordKind::Client,
                id: client.id,
                fields: crate::helpers::fields(
                    json!({"email": "New@Example.com", "city": "Akron"}),
                ),
                expected_version: Some(1),
            },
        )
        .await
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.audit_index, Some(before));
    assert_eq!(app.log_size().await, before + 1);
    let record = app.get(RecordKind::Client, client.id).await;
    assert_eq!(record.version, 2);
    assert_eq!(record.fields["email"], "new@example.com");
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.act, Action::Update);
    assert_eq!(entry.actor.initials, "MKH");
    assert_eq!(
        entry.reason.as_deref(),
        Some("Client requested change 10/7/2018")
    );
    let diff: Vec<_> = entry
        .diff
        .iter()
        .map(|c| (c.field.as_str(), c.old.clone(), c.new.clone()))
        .collect();
    assert_eq!(
        diff,
        vec![
            ("email", json!("jane@example.com"), json!("new@example.com")),
            ("city", Value::Null, json!("Akron")),
        ]
    );
});

both!(a_change_that_changes_nothing_writes_nothing, |app| {
    let client = app.client("Smith").await;
    let before = app.log_size().await;
    // Same values, in another spelling: still no change.
    let out = app
        .update(
            RecordKind::Client,
            client.id,
            json!({"email": " JANE@example.com ", "last_name": "Smith"}),
        )
        .await
        .unwrap();
    assert!(!out.changed);
    assert_eq!(out.audit_index, None);
    assert_eq!(app.log_size().await, before);
    assert_eq!(app.get(RecordKind::Client, client.id).await.version, 1);
});

both!(refused_commands_write_nothing_and_name_the_field, |app| {
    let client = app.client("Smith").await;
    let before = app.log_size().await;
    let snapshot = app.get(RecordKind::Client, client.id).await;
    let cases = [
        (
            RecordKind::Client,
            json!({"last_name": "Smith", "email": "not-an-email"}),
            "email",
        ),
        (
            RecordKind::Client,
            json!({"last_name": "Smith", "phone": "12"}),
            "phone",
        ),
        (
            RecordKind::Client,
            json!({"last_name": "x".repeat(101)}),
            "last_name",
        ),
        (
            RecordKind::Client,
            json!({"first_name": "Jane"}),
            "last_name",
        ),
        (
            RecordKind::Client,
            json!({"last_name": "Smith", "favourite_colour": "red"}),
            "favourite_colour",
        ),
        (
            RecordKind::Client,
            json!({"last_name": "Smith", "client_status_id": 999_999}),
            "client_status_id",
        ),
        (
            RecordKind::Session,
            json!({"client_id": 424_242, "session_type_id": 1,
            "starts_at": "2026-12-05T15:00:00Z"}),
            "client_id",
        ),
        (
            RecordKind::Session,
            json!({"client_id": client.id, "session_type_id": 1,
            "starts_at": "2026-12-05T15:00:00Z", "ends_at": "2026-12-05T14:00:00Z"}),
            "ends_at",
        ),
        (
            RecordKind::Session,
            json!({"client_id": client.id, "session_type_id": 1,
            "starts_at": "next tuesday"}),
            "starts_at",
        ),
        (
            RecordKind::Invoice,
            json!({"client_id": client.id,
            "lines": [{"item": "Print", "qty": -1, "unit_cents": 100}]}),
            "lines[0].qty",
        ),
        (
            RecordKind::Invoice,
            json!({"client_id": client.id,
            "lines": [{"item": "Print", "qty": 100_000, "unit_cents": 10_000_000_000_i64},
                      {"item": "Print", "qty": 100_000, "unit_cents": 10_000_000_000_i64}]}),
            "lines",
        ),
        (
            RecordKind::Payment,
            json!({"invoice_id": 424_242, "amount_cents": 100,
            "payment_method_id": 1}),
            "invoice_id",
        ),
        (
            RecordKind::Payment,
            json!({"invoice_id": 1, "amount_cents": 1.5,
            "payment_method_id": 1}),
            "amount_cents",
        ),
    ];
    for (kind, input, field) in cases {
        let err = app.try_create(kind, input.clone()).await.unwrap_err();
        assert!(
            invalid_fields(&err).contains(&field.to_owned()),
            "{input} should be refused naming {field}, got {err}"
        );
    }
    let err = app
        .update(RecordKind::Client, client.id, json!({"number": 5}))
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["number"]);
    assert_eq!(app.log_size().await, before);
    assert_eq!(app.get(RecordKind::Client, client.id).await, snapshot);
    // Numbers are taken only by commands that succeed.
    assert_eq!(app.client("Jones").await.fields["number"], json!(1002));
});

both!(a_bad_command_in_a_batch_does_not_sink_the_others, |app| {
    let before = app.log_size().await;
    let mut set = tokio::task::JoinSet::new();
    for n in 0..40 {
        let ledger = app.ledger.clone();
        let staff = app.staff;
        set.spawn(async move {
            let email = if n % 4 == 0 {
                "broken".to_owned()
            } else {
                format!("c{n}@example.com")
            };
            let f = crate::helpers::fields(json!({"last_name": format!("C{n}"), "email": email}));
            ledger
                .submit(
                    Context::user(staff),
                    Command::Create {
                        kind: RecordKind::Client,
                        fields: f,
                    },
                )
                .await
        });
    }
    let results = set.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 30);
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Err(Error::Invalid(_))))
            .count(),
        10
    );
    assert_eq!(app.log_size().await, before + 30);
    let mut indices: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok()?.audit_index)
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, (before..before + 30).collect::<Vec<_>>());
});

both!(
    a_command_that_fails_after_writing_takes_back_only_its_own_writes,
    |app| {
        // The storage refuses one note revision: an email change whose reason (stamped into
        // the client's notes after the change itself is written) says so fails halfway.
        let refuse: &[&str] = match app.db {
            keeptrack::store::Db::Sqlite(_, _) => &["CREATE TRIGGER refuse_poison BEFORE INSERT \
             ON note_revisions WHEN NEW.body LIKE '%POISON%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END"],
            keeptrack::store::Db::Postgres(_) => &[
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.body LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned'; END IF; \
             RETURN NEW; END $$",
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON note_revisions \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
            ],
        };
        for sql in refuse {
            crate::helpers::exec(&app.db, sql).await;
        }
        let mut clients = Vec::new();
        for n in 0..24 {
            clients.push(app.client(&format!("C{n}")).await);
        }
        let before = app.log_size().await;
        let mut set = tokio::task::JoinSet::new();
        for (n, client) in clients.iter().enumerate() {
            let (ledger, staff, id) = (app.ledger.clone(), app.staff, client.id);
            set.spawn(async move {
                let reason = if n == 7 { "POISON" } else { "Client asked" };
                let f = crate::helpers::fields(json!({"email": format!("new{n}@example.com")}));
                let out = ledger
                    .submit(
                        Context::user(staff).with_reason(reason),
                        Command::Update {
                            kind: RecordKind::Client,
                            id,
                            fields: f,
                            expected_version: None,
                        },
                    )
                    .await;
                (n, out)
            });
        }
        let mut results = set.join_all().await;
        results.sort_by_key(|(n, _)| *n);
        for (n, out) in &results {
            assert_eq!(out.is_ok(), *n != 7, "command {n}: {out:?}");
        }
        assert_eq!(app.log_size().await, before + 23);
        let mut indices: Vec<i64> = (results.iter())
            .filter_map(|(_, r)| r.as_ref().ok()?.audit_index)
            .collect();
        indices.sort_unstable();
        assert_eq!(indices, (before..before + 23).collect::<Vec<_>>());
        // The refused command's change to the record went with it; everyone else's stayed.
        for (n, client) in clients.iter().enumerate() {
            let now = app.get(RecordKind::Client, client.id).await;
            if n == 7 {
                assert_eq!(now, *client);
            } else {
                assert_eq!(now.fields["email"], json!(format!("new{n}@example.com")));
            }
        }
    }
);

both!(delete_and_restore_round_trip, |app| {
    let client = app.client("Smith").await;
    let err = app
        .submit(
            Context::user(app.staff),
            Command::Delete {
                kind: RecordKind::Client,
                id: client.id,
                expected_version: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(_)),
        "staff may not delete: {err}"
    );
    let out = app
        .submit(
            Context::user(app.manager).with_reason("Duplicate record"),
            Command::Delete {
                kind: RecordKind::Client,
                id: client.id,
                expected_version: None,
            },
        )
        .await
        .unwrap();
    let deleted = out.record.unwrap();
    assert!(deleted.is_deleted());
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.act, Action::Delete);
    assert_eq!(entry.snap.as_ref().unwrap()["last_name"], "Smith");
    assert_eq!(entry.reason.as_deref(), Some("Duplicate record"));
    // A deleted record cannot be changed, nor referred to.
    let err = app
        .update(RecordKind::Client, client.id, json!({"city": "Kent"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Deleted { .. }), "{err}");
    let ty = app.list_id("session_type", "Headshot").await;
    let err = app
        .try_create(
            RecordKind::Session,
            json!({"client_id": client.id, "session_type_id": ty,
                                                "starts_at": "2026-12-05T15:00:00Z"}),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["client_id"]);
    app.submit(
        Context::user(app.manager).with_reason("Deleted by mistake"),
        Command::Restore {
            kind: RecordKind::Client,
            id: client.id,
        },
    )
    .await
    .unwrap();
    let restored = app.get(RecordKind::Client, client.id).await;
    assert!(!restored.is_deleted());
    assert_eq!(restored.fields, client.fields);
    assert_eq!(app.latest(1).await[0].act, Action::Restore);
});

both!(
    a_client_with_sessions_invoices_or_payments_cannot_be_deleted,
    |app| {
        let client = app.client("Smith").await;
        app.session(client.id).await;
        let invoice = app.invoice(client.id).await;
        app.payment(invoice.id, 5000).await;
        let before = app.log_size().await;
        let err = app
            .submit(
                Context::user(app.owner),
                Command::Delete {
                    kind: RecordKind::Client,
                    id: client.id,
                    expected_version: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Client #1001 Jane Smith still has 1 session, 1 invoice and 1 payment; delete or move them first"
        );
        assert_eq!(app.log_size().await, before);
        assert!(!app.get(RecordKind::Client, client.id).await.is_deleted());
    }
);

both!(stale_versions_are_refused, |app| {
    let client = app.client("Smith").await;
    app.update(RecordKind::Client, client.id, json!({"city": "Kent"}))
        .await
        .unwrap();
    let err = app
        .submit(
            Context::user(app.staff),
            Command::Update {
                kind: RecordKind::Client,
                id: client.id,
                fields: crate::helpers::fields(json!({"city": "Akron"})),
                expected_version: Some(1),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                current_version: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        app.get(RecordKind::Client, client.id).await.fields["city"],
        "Kent"
    );
});

both!(unique_initials_and_usernames, |app| {
    let f = crate::helpers::fields(json!({"username": "mkh2", "display_name": "Another Mary",
                                          "initials": "mkh", "security_group": "staff"}));
    let err = app
        .ledger
        .create_user(Context::user(app.owner), f, "correct horse battery")
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["initials"]);
    let f = crate::helpers::fields(
        json!({"username": "x", "display_name": "X", "initials": "XY",
                                          "security_group": "staff"}),
    );
    let err = app
        .ledger
        .create_user(Context::user(app.owner), f, "short")
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["password"]);
    // Password hashes never reach the log.
    let entry = &app.latest(1).await[0];
    let bytes = serde_json::to_string(entry).unwrap();
    assert!(!bytes.contains("argon2"), "{bytes}");
});

// A statement the database refuses part-way through a batch sinks the attempt; the batch
// runs again with a savepoint per command, so the refused change is undone alone, and
// (on PostgreSQL, whose connection is then closed to roll it back) the writer goes on.
both!(
    a_change_the_database_refuses_is_undone_alone_and_the_writer_goes_on,
    |app| {
        let mut clients = Vec::new();
        for n in 0..8 {
            clients.push(app.client(&format!("Client{n}")).await.id);
        }
        let refuse = match &app.db {
            keeptrack::store::Db::Sqlite(..) => vec![
                "CREATE TRIGGER refuse_boom BEFORE UPDATE ON clients WHEN NEW.first_name = 'Boom' \
             BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END",
            ],
            keeptrack::store::Db::Postgres(_) => vec![
                "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.first_name = 'Boom' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; \
             RETURN NEW; END $$",
                "CREATE TRIGGER refuse_boom BEFORE UPDATE ON clients \
             FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
            ],
        };
        for sql in refuse {
            crate::helpers::exec(&app.db, sql).await;
        }
        let rename = |id: i64, to: &str| Command::Update {
            kind: RecordKind::Client,
            id,
            fields: crate::helpers::fields(json!({"first_name": to})),
            expected_version: None,
        };
        let before = app.log_size().await;
        let mut writes = tokio::task::JoinSet::new();
        for (n, id) in clients.iter().copied().enumerate() {
            let (ledger, staff) = (app.ledger.clone(), app.staff);
            let to = if n == 3 {
                "Boom".to_owned()
            } else {
                format!("N{n}")
            };
            let command = rename(id, &to);
            writes.spawn(async move { (n, ledger.submit(Context::user(staff), command).await) });
        }
        while let Some(done) = writes.join_next().await {
            let (n, result) = done.unwrap();
            match n {
                3 => assert!(
                    matches!(&result, Err(Error::Store(_))),
                    "the refused change: {result:?}"
                ),
                _ => assert!(result.is_ok(), "client {n}: {result:?}"),
            }
        }
        assert!(app.ledger.batches_retried() >= 1);
        assert_eq!(app.log_size().await, before + 7);
        let refused = app.get(RecordKind::Client, clients[3]).await;
        assert_eq!(
            (refused.fields["first_name"].as_str(), refused.version),
            (Some("Jane"), 1)
        );
        assert_eq!(
            app.get(RecordKind::Client, clients[5]).await.fields["first_name"],
            "N5"
        );
        // The writer still writes, on a connection of its own again on PostgreSQL.
        app.submit(Context::user(app.staff), rename(clients[3], "Fine"))
            .await
            .unwrap();
        assert_eq!(app.log_size().await, before + 8);
        let report = crate::helpers::verify_now(&app.db).await;
        assert!(report.findings.is_empty(), "{report:?}");
    }
);

// One payment sent eight times at once with one idempotency key, so that the copies
// share batches (on PostgreSQL the key's row is held back to go with a later
// statement): it is taken once, and every copy answers with that payment.
both!(a_payment_sent_at_once_with_one_key_is_taken_once, |app| {
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    let method = app.list_id("payment_method", "Cash").await;
    let before = app.log_size().await;
    // Other writes first, so that the writer, busy with the first, gathers the rest.
    let mut others = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (ledger, staff) = (app.ledger.clone(), app.staff);
        let command = Command::Create {
            kind: RecordKind::Client,
            fields: crate::helpers::fields(json!({"last_name": format!("Other{n}")})),
        };
        others.spawn(async move { ledger.submit(Context::user(staff), command).await });
    }
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (ledger, staff) = (app.ledger.clone(), app.staff);
        let command = Command::Create {
            kind: RecordKind::Payment,
            fields: crate::helpers::fields(
                json!({"invoice_id": invoice.id, "amount_cents": 2500, "payment_method_id": method}),
            ),
        };
        let ctx = Context::user(staff).with_idempotency(keeptrack::ledger::Idempotency {
            key: "pay-at-once".into(),
            request_hash: "same-body".into(),
        });
        sends.spawn(async move { ledger.submit(ctx, command).await });
    }
    let mut ids = Vec::new();
    while let Some(done) = sends.join_next().await {
        let out = done.unwrap().expect("every copy is answered");
        ids.push(out.record.unwrap().id);
    }
    while let Some(done) = others.join_next().await {
        done.unwrap().unwrap();
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one payment: {ids:?}");
    assert_eq!(app.log_size().await, before + 9);
    assert_eq!(app.ledger.batches_retried(), 0);
});
