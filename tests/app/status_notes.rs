//! Status notes: written by the ledger with the change that caused them, read-only.

use keeptrack::{
    domain::record::RecordKind,
    ledger::{ActorRef, Command, Context},
    store,
};
use serde_json::json;

use crate::both;
use crate::helpers::TestApp;

/// The status notes of a record, oldest first, without their stamps.
async fn lines(app: &TestApp, kind: RecordKind, id: i64) -> Vec<String> {
    let notes = store::notes::status_notes(&app.db, kind, id, None, 100)
        .await
        .unwrap();
    notes
        .iter()
        .rev()
        .map(|n| {
            n.text
                .split_once(" – ")
                .map_or(n.text.clone(), |(_, t)| t.to_owned())
        })
        .collect()
}

async fn new_york(app: &TestApp) {
    app.submit(
        Context::user(app.owner),
        Command::SetPreference {
            key: "studio.time_zone".into(),
            value: "America/New_York".into(),
        },
    )
    .await
    .unwrap();
}

both!(session_events, |app| {
    new_york(&app).await;
    let client = app.client("Smith").await;
    let ty = app.list_id("session_type", "Family Portrait").await;
    let session = app
        .create(
            RecordKind::Session,
            json!({"client_id": client.id, "session_type_id": ty,
            "starts_at": "2018-10-20T18:00:00Z", "confirmed": true}),
        )
        .await;
    let capture = app.list_id("session_status", "Image Capture Pending").await;
    app.update(
        RecordKind::Session,
        session.id,
        json!({"session_status_id": capture}),
    )
    .await
    .unwrap();
    app.update(
        RecordKind::Session,
        session.id,
        json!({"starts_at": "2018-10-27T14:00:00Z", "ends_at": "2018-10-27T15:00:00Z"}),
    )
    .await
    .unwrap();
    app.update(RecordKind::Session, session.id, json!({"confirmed": true}))
        .await
        .unwrap();
    app.submit(
        Context::user(app.staff).with_reason("Photographer ill"),
        Command::Update {
            kind: RecordKind::Session,
            id: session.id,
            fields: crate::helpers::fields(json!({"on_hold": true})),
            expected_version: None,
        },
    )
    .await
    .unwrap();
    app.update(RecordKind::Session, session.id, json!({"on_hold": false}))
        .await
        .unwrap();
    app.submit(
        Context::user(app.staff).with_reason("Family moved away"),
        Command::Update {
            kind: RecordKind::Session,
            id: session.id,
            fields: crate::helpers::fields(json!({"cancelled": true})),
            expected_version: None,
        },
    )
    .await
    .unwrap();
    let got = lines(&app, RecordKind::Session, session.id).await;
    assert_eq!(
        got[0],
        "Session booked for 10/20/2018 2:00 PM–3:00 PM; status \"Session Pending\""
    );
    assert!(
        got[1].starts_with(
            "Status changed from \"Session Pending\" to \"Image Capture Pending\" (due "
        ),
        "{}",
        got[1]
    );
    assert_eq!(
        &got[2..],
        [
            "Session moved from 10/20/2018 2:00 PM–3:00 PM to 10/27/2018 10:00 AM–11:00 AM. Reason: Requested by the client",
            "Confirmation cleared by the reschedule",
            "Session confirmed",
            "Session put on hold. Reason: Photographer ill",
            "Session taken off hold. Reason: Requested by the client",
            "Session cancelled. Reason: Family moved away",
        ]
    );
    // Each is stamped with who did it.
    let notes = store::notes::status_notes(&app.db, RecordKind::Session, session.id, None, 1)
        .await
        .unwrap();
    assert!(
        notes[0].text.contains(" SS – Session cancelled"),
        "{}",
        notes[0].text
    );
});

both!(appointment_payment_and_invoice_events, |app| {
    new_york(&app).await;
    let client = app.client("Smith").await;
    let consult = app.list_id("appointment_type", "Consultation").await;
    let confirmed = app.list_id("appointment_status", "Confirmed").await;
    let appt = app
        .create(
            RecordKind::Appointment,
            json!({"client_id": client.id, "appointment_type_id": consult,
            "starts_at": "2018-10-20T18:00:00Z"}),
        )
        .await;
    app.update(RecordKind::Appointment, appt.id, json!({"appointment_status_id": confirmed, "starts_at": "2018-10-20T19:00:00Z", "ends_at": "2018-10-20T19:30:00Z"}))
        .await
        .unwrap();
    assert_eq!(
        lines(&app, RecordKind::Appointment, appt.id).await,
        [
            "Appointment booked for 10/20/2018 2:00 PM–2:30 PM",
            "Status changed from (none) to \"Confirmed\"",
            "Appointment moved from 10/20/2018 2:00 PM–2:30 PM to 10/20/2018 3:00 PM–3:30 PM. Reason: Requested by the client",
        ]
    );

    let invoice = app.invoice(client.id).await;
    app.update_by(
        app.manager,
        RecordKind::Invoice,
        invoice.id,
        json!({"discount_percent": 10, "discount_reason": "Loyalty"}),
    )
    .await
    .unwrap();
    app.update_by(
        app.manager,
        RecordKind::Invoice,
        invoice.id,
        json!({"discount_percent": null, "discount_reason": null}),
    )
    .await
    .unwrap();
    app.submit(
        Context::user(app.manager),
        Command::Post {
            kind: RecordKind::Invoice,
            id: invoice.id,
        },
    )
    .await
    .unwrap();
    app.submit(
        Context::user(app.manager).with_reason("Wrong size"),
        Command::Unlock {
            kind: RecordKind::Invoice,
            id: invoice.id,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        lines(&app, RecordKind::Invoice, invoice.id).await,
        [
            "Discount of 10% applied (Loyalty)",
            "Discount removed",
            "Invoice posted",
            "Invoice unlocked. Reason: Wrong size"
        ]
    );

    let payment = app.payment(invoice.id, 5000).await;
    let check = app.list_id("payment_method", "Check").await;
    app.update(
        RecordKind::Payment,
        payment.id,
        json!({"amount_cents": 4500, "payment_method_id": check}),
    )
    .await
    .unwrap();
    app.submit(
        Context::user(app.manager).with_reason("Bounced"),
        Command::VoidPayment { id: payment.id },
    )
    .await
    .unwrap();
    let refund = app.payment(invoice.id, -1000).await;
    assert_eq!(
        lines(&app, RecordKind::Payment, payment.id).await,
        [
            "Payment of $50.00 by Cash recorded",
            "Payment changed: amount $50.00 → $45.00, method Cash → Check. Reason: Requested by the client",
            "Payment of $45.00 voided. Reason: Bounced",
        ]
    );
    assert_eq!(
        lines(&app, RecordKind::Payment, refund.id).await,
        ["Refund of $10.00 by Cash recorded"]
    );
});

both!(communications_are_status_notes_by_spsa, |app| {
    let client = app.client("Smith").await;
    app.submit(
        Context::new(ActorRef::Automation("Trigger \"Session reminder\"".into())),
        Command::RecordCommunication {
            kind: RecordKind::Client,
            id: client.id,
            channel: "email".into(),
            subject: "Your session is tomorrow".into(),
            via: Some("Trigger \"Session reminder\"".into()),
        },
    )
    .await
    .unwrap();
    let notes = store::notes::status_notes(&app.db, RecordKind::Client, client.id, None, 10)
        .await
        .unwrap();
    assert!(
        notes[0].text.ends_with(
            " SPSA – Email \"Your session is tomorrow\" sent by Trigger \"Session reminder\""
        ),
        "{}",
        notes[0].text
    );
    let entry = &app.latest(1).await[0];
    assert_eq!(
        entry.comm.as_ref().unwrap().subject,
        "Your session is tomorrow"
    );
    assert_eq!(
        entry.actor.kind,
        keeptrack::domain::audit::ActorKind::Automation
    );
});

both!(status_notes_and_revisions_refuse_direct_sql, |app| {
    let client = app.client("Smith").await;
    app.submit(
        Context::user(app.staff),
        Command::SaveNotes {
            kind: RecordKind::Client,
            id: client.id,
            text: "Hi".into(),
            base_revision: 0,
        },
    )
    .await
    .unwrap();
    let ty = app.list_id("session_type", "Headshot").await;
    app.create(
        RecordKind::Session,
        json!({"client_id": client.id, "session_type_id": ty, "starts_at": "2026-12-01T15:00:00Z"}),
    )
    .await;
    let attempts = [
        "UPDATE status_notes SET body = 'forged'",
        "DELETE FROM status_notes",
        "UPDATE note_revisions SET body = 'forged'",
        "DELETE FROM note_revisions",
    ];
    for sql in attempts {
        let result = match &app.db {
            store::Db::Sqlite(p, _) => sqlx::query(sql).execute(p).await.map(|_| ()),
            store::Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        };
        assert!(result.is_err(), "{sql} should be refused");
    }
    if let store::Db::Postgres(p) = &app.db {
        assert!(
            sqlx::query("TRUNCATE status_notes")
                .execute(p)
                .await
                .is_err()
        );
    }
    assert_eq!(
        store::notes::status_notes(&app.db, RecordKind::Session, 1, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
});
