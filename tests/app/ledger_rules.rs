//! Posting, overrides, audit switches, session rules and the log's guard rails.

use keeptrack::{
    domain::{
        audit::{Action, Category},
        record::RecordKind,
    },
    ledger::{Command, Context, Error},
};
use serde_json::json;

use crate::both;

both!(posted_invoices_are_locked_until_unlocked, |app| {
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    let post = Command::Post {
        kind: RecordKind::Invoice,
        id: invoice.id,
    };
    let err = app
        .submit(Context::user(app.staff), post.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    app.submit(Context::user(app.manager), post).await.unwrap();
    assert_eq!(app.latest(1).await[0].act, Action::Post);
    let err = app
        .update(
            RecordKind::Invoice,
            invoice.id,
            json!({"description": "changed"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Locked {
                state: "posted",
                ..
            }
        ),
        "{err}"
    );
    let unlock = Command::Unlock {
        kind: RecordKind::Invoice,
        id: invoice.id,
    };
    assert!(matches!(
        app.submit(Context::user(app.staff), unlock.clone())
            .await
            .unwrap_err(),
        Error::Forbidden(_)
    ));
    // A manager's credentials let staff unlock; both are on record.
    app.submit(
        Context::user(app.staff)
            .authorized_by(app.manager)
            .with_reason("Wrong print size"),
        unlock,
    )
    .await
    .unwrap();
    let latest = app.latest(2).await;
    let (entry, overridden) = (&latest[1], &latest[0]);
    assert_eq!(entry.act, Action::Unlock);
    assert_eq!(entry.actor.initials, "SS");
    let auth = entry.auth.as_ref().unwrap();
    assert_eq!(
        (auth.initials.as_str(), auth.permission.as_str()),
        ("MKH", "unlock_posted")
    );
    // The override has its own User Authentication entry: both people, the permission,
    // the record, the action and the reason.
    assert_eq!(
        (overridden.cat, overridden.act),
        (Category::UserAuthentication, Action::Override)
    );
    assert_eq!(overridden.actor.initials, "SS");
    assert_eq!(overridden.auth.as_ref().unwrap().initials, "MKH");
    assert_eq!(overridden.rec.as_ref().unwrap().id, invoice.id);
    let sec = overridden.sec.as_ref().unwrap();
    assert_eq!(
        (sec.permission.as_deref(), sec.action.as_deref()),
        (Some("unlock_posted"), Some("unlock"))
    );
    assert_eq!(overridden.reason.as_deref(), Some("Wrong print size"));
    app.update(
        RecordKind::Invoice,
        invoice.id,
        json!({"description": "changed"}),
    )
    .await
    .unwrap();
});

both!(an_authoriser_without_the_permission_does_not_help, |app| {
    let client = app.client("Smith").await;
    let other_staff = app.add_user("tina", "Tina Two", "TT", "staff").await;
    let err = app
        .submit(
            Context::user(app.staff).authorized_by(other_staff),
            Command::Delete {
                kind: RecordKind::Client,
                id: client.id,
                expected_version: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
});

both!(payments_void_and_refund, |app| {
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    let payment = app.payment(invoice.id, 5000).await;
    let refund = app.payment(invoice.id, -1000).await;
    assert_eq!(refund.fields["amount_cents"], -1000);
    app.submit(
        Context::user(app.manager).with_reason("Card declined"),
        Command::VoidPayment { id: payment.id },
    )
    .await
    .unwrap();
    let entry = &app.latest(1).await[0];
    assert_eq!((entry.act, entry.cat), (Action::Void, Category::Payments));
    let err = app
        .update(RecordKind::Payment, payment.id, json!({"amount_cents": 10}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Locked {
                state: "voided",
                ..
            }
        ),
        "{err}"
    );
    // Posted money is corrected by a new document, not voided.
    app.submit(
        Context::user(app.manager),
        Command::Post {
            kind: RecordKind::Payment,
            id: refund.id,
        },
    )
    .await
    .unwrap();
    let err = app
        .submit(
            Context::user(app.manager),
            Command::VoidPayment { id: refund.id },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Locked {
                state: "posted",
                ..
            }
        ),
        "{err}"
    );
});

both!(
    switching_a_category_off_stops_its_entries_and_is_itself_logged,
    |app| {
        let client = app.client("Smith").await;
        let err = app
            .submit(
                Context::user(app.staff),
                Command::SetAuditLogging {
                    category: Category::Clients,
                    enabled: false,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)));
        let before = app.log_size().await;
        app.submit(
            Context::user(app.owner),
            Command::SetAuditLogging {
                category: Category::Clients,
                enabled: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(app.log_size().await, before + 1);
        let entry = &app.latest(1).await[0];
        assert_eq!(
            (entry.cat, entry.act),
            (Category::System, Action::Preference)
        );
        assert_eq!(entry.diff[0].field, "audit.clients");
        assert_eq!(
            (entry.diff[0].old.clone(), entry.diff[0].new.clone()),
            (json!("on"), json!("off"))
        );
        let out = app
            .update(RecordKind::Client, client.id, json!({"city": "Kent"}))
            .await
            .unwrap();
        assert!(out.changed);
        assert_eq!(out.audit_index, None);
        assert_eq!(app.log_size().await, before + 1);
        // Other categories still log.
        app.session(client.id).await;
        assert_eq!(app.log_size().await, before + 2);
        // System cannot be switched off.
        let err = app
            .submit(
                Context::user(app.owner),
                Command::SetAuditLogging {
                    category: Category::System,
                    enabled: false,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)));
        app.submit(
            Context::user(app.owner),
            Command::SetAuditLogging {
                category: Category::Clients,
                enabled: true,
            },
        )
        .await
        .unwrap();
        app.update(RecordKind::Client, client.id, json!({"city": "Akron"}))
            .await
            .unwrap();
        assert_eq!(app.log_size().await, before + 4);
    }
);

both!(discounts_are_logged_as_invoice_discounts_applied, |app| {
    let client = app.client("Smith").await;
    let invoice = app.invoice(client.id).await;
    app.update_by(
        app.manager,
        RecordKind::Invoice,
        invoice.id,
        json!({"discount_percent": 10, "discount_reason": "Loyalty"}),
    )
    .await
    .unwrap();
    assert_eq!(app.latest(1).await[0].cat, Category::InvoiceDiscounts);
    app.update(
        RecordKind::Invoice,
        invoice.id,
        json!({"description": "Prints"}),
    )
    .await
    .unwrap();
    assert_eq!(app.latest(1).await[0].cat, Category::Invoices);
});

both!(sessions_take_defaults_and_rescheduling_unconfirms, |app| {
    let client = app.client("Smith").await;
    let ty = app.list_id("session_type", "Newborn").await;
    let pending = app.list_id("session_status", "Session Pending").await;
    let session = app
        .create(
            RecordKind::Session,
            json!({"client_id": client.id, "session_type_id": ty,
            "starts_at": "2026-12-05T10:00:00-05:00", "confirmed": true}),
        )
        .await;
    assert_eq!(session.fields["ends_at"], "2026-12-05T17:00:00Z");
    assert_eq!(session.fields["session_status_id"], pending);
    assert_eq!(session.fields["number"], 5001);
    app.update(
        RecordKind::Session,
        session.id,
        json!({"starts_at": "2026-12-12T15:00:00Z",
                                                        "ends_at": "2026-12-12T17:00:00Z"}),
    )
    .await
    .unwrap();
    let moved = app.get(RecordKind::Session, session.id).await;
    assert_eq!(moved.fields["confirmed"], false);
    assert_eq!(moved.fields["rescheduled"], true);
    let fields: Vec<_> = app.latest(1).await[0]
        .diff
        .iter()
        .map(|c| c.field.clone())
        .collect();
    assert_eq!(fields, ["starts_at", "ends_at", "confirmed", "rescheduled"]);
    let capture = app.list_id("session_status", "Image Capture Pending").await;
    app.update(
        RecordKind::Session,
        session.id,
        json!({"session_status_id": capture}),
    )
    .await
    .unwrap();
    assert!(app.get(RecordKind::Session, session.id).await.fields["status_due"].is_string());
});

both!(the_log_refuses_direct_sql_changes, |app| {
    app.client("Smith").await;
    let size = app.log_size().await;
    let attempts = [
        "UPDATE audit_log SET action = 'forged' WHERE idx = 1",
        "DELETE FROM audit_log WHERE idx = 1",
        "UPDATE log_head SET size = 0 WHERE id = 1",
        "DELETE FROM log_head",
    ];
    for sql in attempts {
        let result = match &app.db {
            keeptrack::store::Db::Sqlite(p, _) => sqlx::query(sql).execute(p).await.map(|_| ()),
            keeptrack::store::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        };
        assert!(result.is_err(), "{sql} should be refused");
    }
    if let keeptrack::store::Db::Postgres(p) = &app.db {
        assert!(sqlx::query("TRUNCATE audit_log").execute(p).await.is_err());
    }
    assert_eq!(app.log_size().await, size);
    assert_eq!(app.latest(100).await.len() as i64, size);
});

both!(the_first_entry_installs_the_log, |app| {
    let q = keeptrack::audit::Query {
        action: Some(Action::Install),
        limit: 5,
        ..Default::default()
    };
    let page = keeptrack::audit::list(&app.db, &q).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    let entry = &page.entries[0];
    assert_eq!((entry.i, entry.actor.initials.as_str()), (0, "SPSA"));
    assert!(entry.log.starts_with("keeptrack.") && entry.log.ends_with("/audit"));
    // Starting again installs nothing new.
    let again = keeptrack::ledger::Ledger::start(app.db.clone())
        .await
        .unwrap();
    drop(again);
    assert_eq!(
        keeptrack::audit::list(&app.db, &q)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
});

both!(
    a_user_switched_off_by_another_server_is_refused_at_once,
    |app| {
        // Two servers on one database: each has its own writer, and this one remembers the
        // users who acted in its last batch while nobody else has written.
        app.client("Smith").await;
        let other = keeptrack::ledger::Ledger::start(app.db.clone())
            .await
            .unwrap();
        other
            .submit(
                Context::user(app.owner).with_reason("Left the studio"),
                Command::Update {
                    kind: RecordKind::User,
                    id: app.staff,
                    fields: crate::helpers::fields(json!({"active": false})),
                    expected_version: None,
                },
            )
            .await
            .unwrap();
        let refused = app
            .try_create(RecordKind::Client, json!({"last_name": "Jones"}))
            .await;
        assert!(
            matches!(refused, Err(Error::NotPermitted(_))),
            "{refused:?}"
        );
        // This server's own change is seen as well.
        app.update_by(
            app.owner,
            RecordKind::User,
            app.staff,
            json!({"active": true}),
        )
        .await
        .unwrap();
        app.client("Brown").await;
    }
);
