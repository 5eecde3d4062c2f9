//! The Notes tab: revisions, concurrent saves, the notes permission, stamps.

use keeptrack::{
    audit::history,
    domain::{audit::Action, record::RecordKind},
    ledger::{Command, Context, Error},
    store,
};
use serde_json::json;

use crate::both;
use crate::helpers::invalid_fields;

fn save(id: i64, text: &str, base: i64) -> Command {
    Command::SaveNotes {
        kind: RecordKind::Client,
        id,
        text: text.to_owned(),
        base_revision: base,
    }
}

both!(every_save_is_a_revision_kept_for_ever, |app| {
    let client = app.client("Smith").await;
    let out = app
        .submit(
            Context::user(app.staff),
            save(client.id, "Called about proofs.", 0),
        )
        .await
        .unwrap();
    assert_eq!(out.notes_revision, Some(1));
    let entry = &app.latest(1).await[0];
    assert_eq!(entry.act, Action::Notes);
    assert_eq!(entry.note.as_ref().unwrap().rev, 1);
    assert_eq!(
        entry.note.as_ref().unwrap().sha256,
        keeptrack::domain::audit::text_sha256("Called about proofs.")
    );
    // Staff may add to what was saved...
    app.submit(
        Context::user(app.staff),
        save(client.id, "Called about proofs.\nBooked ordering.", 1),
    )
    .await
    .unwrap();
    // ...but not rewrite it: that needs the Client Notes permission.
    let err = app
        .submit(
            Context::user(app.staff),
            save(client.id, "Nothing happened.", 2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    app.submit(
        Context::user(app.manager),
        save(client.id, "Booked ordering.", 2),
    )
    .await
    .unwrap();
    let revisions = store::notes::revisions(&app.db, RecordKind::Client, client.id, None, 10)
        .await
        .unwrap();
    let texts: Vec<_> = revisions.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Booked ordering.",
            "Called about proofs.\nBooked ordering.",
            "Called about proofs."
        ]
    );
    assert_eq!(revisions[0].author.initials, "MKH");
    // Saving the same text again writes nothing.
    let before = app.log_size().await;
    let out = app
        .submit(
            Context::user(app.manager),
            save(client.id, "Booked ordering.", 3),
        )
        .await
        .unwrap();
    assert!(!out.changed);
    assert_eq!(app.log_size().await, before);
});

both!(
    a_save_from_a_stale_revision_never_overwrites_a_colleague,
    |app| {
        let client = app.client("Smith").await;
        app.submit(Context::user(app.staff), save(client.id, "First.", 0))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            app.submit(
                Context::user(app.staff),
                save(client.id, "First.\nSam's line.", 1)
            ),
            app.submit(
                Context::user(app.manager),
                save(client.id, "First.\nMary's line.", 1)
            ),
        );
        let (won, lost) = match (a, b) {
            (Ok(_), Err(e)) => ("First.\nSam's line.", e),
            (Err(e), Ok(_)) => ("First.\nMary's line.", e),
            other => panic!("exactly one save should win: {other:?}"),
        };
        match lost {
            Error::NotesConflict { revision, text, .. } => {
                assert_eq!(revision, 2);
                assert_eq!(text, won);
            }
            other => panic!("expected a conflict, got {other}"),
        }
        let latest = app.notes(RecordKind::Client, client.id).await;
        assert_eq!((latest.revision, latest.text.as_str()), (2, won));
    }
);

both!(bad_notes_and_reasons_are_refused_and_write_nothing, |app| {
    let client = app.client("Smith").await;
    let before = app.log_size().await;
    let huge = "x".repeat(keeptrack::domain::note::MAX_CHARS + 1);
    let err = app
        .submit(Context::user(app.staff), save(client.id, &huge, 0))
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["notes"]);
    let err = app
        .submit(Context::user(app.staff), save(client.id, "a\u{0}b", 0))
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["notes"]);
    let err = app
        .submit(
            Context::user(app.staff).with_reason("   "),
            Command::Update {
                kind: RecordKind::Client,
                id: client.id,
                fields: crate::helpers::fields(json!({"email": "b@x.com"})),
                expected_version: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["reason"]);
    let err = app
        .submit(
            Context::user(app.owner),
            Command::SetPreference {
                key: "studio.time_zone".into(),
                value: "Mars/Olympus".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(&err), ["studio.time_zone"]);
    let err = app
        .submit(Context::user(app.staff), save(424_242, "x", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(app.log_size().await, before);
    assert!(
        store::notes::latest(&app.db, RecordKind::Client, client.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.get(RecordKind::Client, client.id).await.fields["email"],
        "jane@example.com"
    );
});

both!(
    the_stamp_comes_from_the_server_clock_and_the_users_initials,
    |app| {
        app.submit(
            Context::user(app.owner),
            Command::SetPreference {
                key: "studio.time_zone".into(),
                value: "America/New_York".into(),
            },
        )
        .await
        .unwrap();
        let at: jiff::Timestamp = "2018-10-18T15:00:04Z".parse().unwrap();
        let stamp = history::stamp_for(&app.db, app.manager, at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stamp, "10/18/2018 11:00:04 AM MKH – ");
        app.submit(
            Context::user(app.owner),
            Command::SetPreference {
                key: "studio.stamp_format".into(),
                value: "iso".into(),
            },
        )
        .await
        .unwrap();
        let stamp = history::stamp_for(&app.db, app.manager, at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stamp, "2018-10-18 11:00:04 MKH – ");
    }
);

fn add(id: i64, text: &str, stamp: bool) -> Command {
    Command::AppendNotes {
        kind: RecordKind::Client,
        id,
        text: text.to_owned(),
        stamp,
    }
}

both!(lines_added_at_once_both_land_without_a_conflict, |app| {
    let client = app.client("Smith").await;
    app.submit(Context::user(app.staff), save(client.id, "First.", 0))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        app.submit(
            Context::user(app.staff),
            add(client.id, "Sam's line.", false)
        ),
        app.submit(
            Context::user(app.manager),
            add(client.id, "Mary's line.", false)
        ),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut revisions = [a.notes_revision.unwrap(), b.notes_revision.unwrap()];
    revisions.sort_unstable();
    assert_eq!(revisions, [2, 3]);
    let latest = app.notes(RecordKind::Client, client.id).await;
    assert_eq!(latest.revision, 3);
    assert!(
        [
            "First.\nSam's line.\nMary's line.",
            "First.\nMary's line.\nSam's line."
        ]
        .contains(&latest.text.as_str()),
        "{:?}",
        latest.text
    );
    // Each addition is an audited notes entry naming its revision and that text's hash.
    let entries = app.latest(2).await;
    assert!(entries.iter().all(|e| e.act == Action::Notes));
    let newest = entries[0].note.as_ref().unwrap();
    assert_eq!(newest.rev, 3);
    assert_eq!(
        newest.sha256,
        keeptrack::domain::audit::text_sha256(&latest.text)
    );
});

both!(
    an_added_line_is_stamped_and_bad_lines_write_nothing,
    |app| {
        let client = app.client("Smith").await;
        let out = app
            .submit(
                Context::user(app.manager),
                add(client.id, "\r\nCalled about proofs.\r\n", true),
            )
            .await
            .unwrap();
        let text = out.notes_text.unwrap();
        assert!(
            text.ends_with(" MKH – Called about proofs."),
            "stamped with the manager's initials: {text:?}"
        );
        assert!(!text.contains('\r') && !text.starts_with('\n'), "{text:?}");
        assert_eq!(out.notes_revision, Some(1));

        let before = app.log_size().await;
        for bad in ["", "  \n ", "a\u{7}b"] {
            let err = app
                .submit(Context::user(app.staff), add(client.id, bad, true))
                .await
                .unwrap_err();
            assert_eq!(invalid_fields(&err), ["text"], "{bad:?}");
        }
        // A line that fits alone but not below what is there: the revision it wrote is
        // taken back with the command.
        let long = "x".repeat(keeptrack::domain::note::MAX_CHARS - 10);
        let err = app
            .submit(Context::user(app.staff), add(client.id, &long, false))
            .await
            .unwrap_err();
        assert_eq!(invalid_fields(&err), ["text"]);
        let err = app
            .submit(Context::user(app.staff), add(424_242, "x", true))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert_eq!(app.log_size().await, before);
        let latest = app.notes(RecordKind::Client, client.id).await;
        assert_eq!((latest.revision, latest.text), (1, text));
    }
);

// On PostgreSQL the writer reads a batch's notes ahead and computes each appended
// line's revision itself. Lines and a save to two clients at once, one line too long
// for what is there: that line alone is refused (its batch runs again with savepoints,
// where nothing is read ahead), the save lands or meets a conflict, and every revision
// is numbered in turn and answered as stored.
both!(
    lines_and_a_save_at_once_lose_only_the_line_too_long,
    |app| {
        let clients = [app.client("Smith").await.id, app.client("Jones").await.id];
        for id in clients {
            app.submit(Context::user(app.manager), save(id, "First.", 0))
                .await
                .unwrap();
        }
        let long = "x".repeat(keeptrack::domain::note::MAX_CHARS - 3);
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..13 {
            let (ledger, manager) = (app.ledger.clone(), app.manager);
            let command = match i {
                5 => add(clients[0], &long, false),
                12 => save(clients[1], "First.\nSaved.", 1),
                _ => add(clients[i % 2], &format!("L{i}"), false),
            };
            writes.spawn(async move { (i, ledger.submit(Context::user(manager), command).await) });
        }
        let mut answers = Vec::new();
        while let Some(done) = writes.join_next().await {
            answers.push(done.unwrap());
        }
        answers.sort_by_key(|(i, _)| *i);
        assert!(app.ledger.batches_retried() >= 1);
        let mut saved = false;
        for (i, out) in &answers {
            match (i, out) {
                (5, Err(e)) => assert_eq!(invalid_fields(e), ["text"]),
                (12, Err(Error::NotesConflict { .. })) => {}
                (12, Ok(_)) => saved = true,
                (_, out) => assert!(out.is_ok(), "write {i}: {out:?}"),
            }
        }
        for (c, id) in clients.into_iter().enumerate() {
            let revisions = store::notes::revisions(&app.db, RecordKind::Client, id, None, 100)
                .await
                .unwrap();
            // Client 0 gets the even lines, client 1 the odd ones but 5, and the save.
            let lines = if c == 0 { 6 } else { 5 + usize::from(saved) };
            let numbers: Vec<i64> = revisions.iter().map(|r| r.revision).rev().collect();
            assert_eq!(
                numbers,
                (1..=lines as i64 + 1).collect::<Vec<_>>(),
                "client {c}"
            );
            assert!(!revisions[0].text.contains("xxx"), "client {c}");
            assert_eq!(revisions[0].text.lines().count(), lines + 1, "client {c}");
            for (i, out) in answers.iter().filter(|(i, _)| *i != 5) {
                let Ok(out) = out else { continue };
                if out.record.as_ref().map(|r| r.id) != Some(id) {
                    continue;
                }
                let number = out.notes_revision.unwrap();
                let stored = revisions.iter().find(|r| r.revision == number).unwrap();
                assert_eq!(out.notes_text.as_ref(), Some(&stored.text), "write {i}");
            }
        }
    }
);
