//! Signed checkpoints anchor the log: rewrites and truncations that leave the log
//! consistent with itself are caught against a checkpoint kept outside the database.

use keeptrack::{
    audit::{
        checkpoint::{Signer, Verifier},
        verify::{Anchors, Damage, verify},
    },
    domain::{audit::leaf_hash, merkle::Frontier},
    ledger::{Command, Context, Ledger},
    store::{self, Db},
};

use crate::both;
use crate::helpers::{TestApp, clients_at_once, drop_guards, exec, verify_now};

/// A studio with a signing writer; returns the ledger and the signed note.
pub(crate) async fn signed(app: &TestApp) -> (Ledger, Signer, String) {
    let origin = store::preferences::all(&app.db).await.unwrap()["log.origin"].clone();
    let signer = Signer::generate(&origin).unwrap();
    let ledger = Ledger::start_signing(
        app.db.clone(),
        Some(Signer::from_skey(&signer.to_skey()).unwrap()),
    )
    .await
    .unwrap();
    for n in 0..5 {
        app.client(&format!("C{n}")).await;
    }
    let out = ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap();
    (ledger, signer, out.checkpoint.unwrap())
}

/// Verify now, with `note` from `signer` as the checkpoint kept off the machine.
async fn verified_now(db: &Db, signer: &Signer, note: &str) -> keeptrack::audit::verify::Report {
    verify(
        db,
        anchors(signer, note),
        keeptrack::clock::now(),
        |_, _| {},
    )
    .await
    .unwrap()
}

pub(crate) fn anchors(signer: &Signer, note: &str) -> Anchors {
    let key = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
    let checkpoint = key.open(note.as_bytes()).unwrap();
    Anchors {
        key: Some(key),
        checkpoints: vec![("off-machine copy".into(), checkpoint)],
        warnings: vec![],
    }
}

/// What an attacker with SQL but no key does after editing: recompute every leaf, node
/// and the head so the log agrees with itself again, and copy its query keys afresh.
pub(crate) async fn rehash_everything(db: &Db) {
    exec(db, "DELETE FROM audit_keys").await;
    // A copy the writer made meanwhile came from the edited log too.
    exec(
        db,
        "INSERT INTO audit_keys (idx, ts, category, action, actor_id, record_type, record_id) \
         SELECT idx, ts, category, action, actor_id, record_type, record_id FROM audit_log \
         WHERE true ON CONFLICT (idx) DO NOTHING",
    )
    .await;
    exec(db, "DELETE FROM audit_tree").await;
    let rows = store::audit_log::rows(db, 0, i64::MAX, 1_000_000)
        .await
        .unwrap();
    let mut frontier = Frontier::new();
    for row in &rows {
        let leaf = leaf_hash(&row.bytes);
        let hex: String = leaf.iter().map(|b| format!("{b:02x}")).collect();
        let lit = match db {
            Db::Sqlite(_, _) => format!("X'{hex}'"),
            Db::Postgres(_) => format!("'\\x{hex}'::bytea"),
        };
        exec(
            db,
            &format!(
                "UPDATE audit_log SET leaf_hash = {lit} WHERE idx = {}",
                row.idx
            ),
        )
        .await;
        for (level, idx, hash) in frontier.push(leaf).into_iter().filter(|n| n.0 > 0) {
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            let lit = match db {
                Db::Sqlite(_, _) => format!("X'{hex}'"),
                Db::Postgres(_) => format!("'\\x{hex}'::bytea"),
            };
            exec(
                db,
                &format!(
                    "INSERT INTO audit_tree (leaf, level, hash) VALUES ({}, {level}, {lit})",
                    store::audit_log::completing_leaf(level, idx)
                ),
            )
            .await;
        }
    }
    let hex: String = frontier.root().iter().map(|b| format!("{b:02x}")).collect();
    let lit = match db {
        Db::Sqlite(_, _) => format!("X'{hex}'"),
        Db::Postgres(_) => format!("'\\x{hex}'::bytea"),
    };
    exec(
        db,
        &format!(
            "UPDATE log_head SET size = {}, root = {lit} WHERE id = 1",
            rows.len()
        ),
    )
    .await;
}

both!(a_checkpointed_log_verifies_clean, |app| {
    let (ledger, signer, note) = signed(&app).await;
    let size = app.log_size().await;
    assert!(
        note.starts_with(&format!("{}\n{size}\n", signer.name())),
        "{note}"
    );
    assert_eq!(
        app.latest(1).await[0].act,
        keeptrack::domain::audit::Action::Checkpoint
    );
    let report = verified_now(&app.db, &signer, &note).await;
    assert!(report.findings.is_empty(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    assert_eq!(report.exit_code(), 0);
    // Later entries beyond the checkpoint are fine.
    app.client("Later").await;
    let report = verified_now(&app.db, &signer, &note).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    // An hour later with no new checkpoint, it is stale.
    let later = keeptrack::clock::now() + jiff::SignedDuration::from_hours(1);
    let report = verify(&app.db, anchors(&signer, &note), later, |_, _| {})
        .await
        .unwrap();
    assert!(
        report.warnings.iter().any(|w| w.starts_with("STALE")),
        "{report:?}"
    );
    drop(ledger);
});

both!(
    an_edit_rehashed_to_look_consistent_is_caught_by_the_checkpoint,
    |app| {
        let (_ledger, signer, note) = signed(&app).await;
        drop_guards(&app.db).await;
        let row = store::audit_log::rows(&app.db, 5, 5 + 1, 1)
            .await
            .unwrap()
            .remove(0);
        let forged = String::from_utf8(row.bytes)
            .unwrap()
            .replace("\"act\":\"create\"", "\"act\":\"update\"");
        let sql = "UPDATE audit_log SET entry = $1, action = 'update' WHERE idx = 5";
        match &app.db {
            Db::Sqlite(p, _) => sqlx::query(sql)
                .bind(forged.into_bytes())
                .execute(p)
                .await
                .map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql)
                .bind(forged.into_bytes())
                .execute(p)
                .await
                .map(|_| ()),
        }
        .unwrap();
        rehash_everything(&app.db).await;
        // Without the anchor, the log agrees with itself...
        let alone = verify_now(&app.db).await;
        assert!(alone.findings.is_empty(), "{alone:?}");
        // ...but not with the checkpoint kept off the machine.
        let report = verified_now(&app.db, &signer, &note).await;
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.damage == Damage::Rewritten),
            "{report:?}"
        );
        assert_eq!(report.exit_code(), 1);
    }
);

both!(
    a_truncation_made_consistent_is_caught_by_the_checkpoint,
    |app| {
        let (_ledger, signer, note) = signed(&app).await;
        let size = app.log_size().await;
        drop_guards(&app.db).await;
        exec(
            &app.db,
            &format!("DELETE FROM audit_log WHERE idx >= {}", size - 3),
        )
        .await;
        rehash_everything(&app.db).await;
        let report = verified_now(&app.db, &signer, &note).await;
        let first = &report.findings[0];
        assert_eq!(
            (first.damage, first.index),
            (Damage::Truncated, Some(size - 3)),
            "{report:?}"
        );
    }
);

both!(checkpoints_need_the_key_for_this_log, |app| {
    // A key for another log is refused by the writer.
    let other = Signer::generate("keeptrack.other/audit").unwrap();
    let ledger = Ledger::start_signing(app.db.clone(), Some(other))
        .await
        .unwrap();
    let err = ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not this log"), "{err}");
    // Without a key there are no checkpoints at all.
    let err = app
        .ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without a signing key"), "{err}");
});

both!(proof_bundles_check_offline_and_fail_when_altered, |app| {
    let (_ledger, signer, _note) = signed(&app).await;
    let key = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
    let size = app.log_size().await as u64;
    for index in [0, size / 2, size - 1] {
        let bundle = keeptrack::audit::proof::prove(&app.db, index, &key)
            .await
            .unwrap();
        let bytes = serde_json::to_vec(&bundle).unwrap();
        let proven = keeptrack::audit::proof::check(&bytes, Some(&key)).unwrap();
        assert_eq!(proven.entry.i as u64, index);
        // Any change to the entry breaks it.
        let mut altered = bundle.clone();
        altered.entry = altered.entry.replacen("\"ts\":", "\"ts\":1", 1);
        assert!(
            keeptrack::audit::proof::check(&serde_json::to_vec(&altered).unwrap(), Some(&key))
                .is_err()
        );
        // So does another key.
        let stranger = Signer::generate(signer.name()).unwrap().verifier();
        assert!(keeptrack::audit::proof::check(&bytes, Some(&stranger)).is_err());
    }
    // An entry after the newest checkpoint waits for the next one.
    app.client("Later").await;
    let err = keeptrack::audit::proof::prove(&app.db, size, &key)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no stored checkpoint covers"),
        "{err}"
    );
    let err = keeptrack::audit::proof::prove(&app.db, size + 5, &key)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no entry"), "{err}");
});

both!(
    proofs_hold_across_the_stored_and_the_computed_levels,
    |app| {
        let (ledger, signer, _) = signed(&app).await;
        // Past the first stored node, so that proofs take nodes from both.
        let block = 1u64 << store::audit_log::LOWEST_STORED;
        clients_at_once(&ledger, app.staff, block as usize + 40).await;
        let note = ledger
            .submit(Context::system(), Command::Checkpoint)
            .await
            .unwrap()
            .checkpoint
            .unwrap();
        let stored = store::audit_log::nodes_in_range(&app.db, 0, u64::MAX)
            .await
            .unwrap();
        assert!(!stored.is_empty());
        assert!(
            stored
                .iter()
                .all(|(level, ..)| *level >= store::audit_log::LOWEST_STORED)
        );
        let key = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
        let size = app.log_size().await as u64;
        for index in [0, block - 2, block - 1, block, size - 1] {
            let bundle = keeptrack::audit::proof::prove(&app.db, index, &key)
                .await
                .unwrap();
            let proven =
                keeptrack::audit::proof::check(&serde_json::to_vec(&bundle).unwrap(), Some(&key))
                    .unwrap();
            assert_eq!(proven.entry.i as u64, index);
        }
        let report = verified_now(&app.db, &signer, &note).await;
        assert!(report.findings.is_empty(), "{report:?}");
    }
);

/// Restoring an old backup looks like a consistent log, but newer checkpoints kept off
/// the machine show it as truncated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_old_backup_is_caught_as_truncated() {
    let app = TestApp::sqlite().await;
    let (ledger, signer, _) = signed(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("old.db");
    app.db.backup_into(&backup).await.unwrap();
    app.client("After the backup").await;
    let newer = ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap()
        .checkpoint
        .unwrap();
    let restored = Db::open(&format!("sqlite://{}", backup.display()))
        .await
        .unwrap();
    let alone = verify(
        &restored,
        Anchors::default(),
        keeptrack::clock::now(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(alone.findings.is_empty(), "{alone:?}");
    let report = verify(
        &restored,
        anchors(&signer, &newer),
        keeptrack::clock::now(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.findings[0].damage, Damage::Truncated, "{report:?}");
    // PostgreSQL is backed up with pg_dump instead.
    if let Some(pg) = TestApp::postgres().await {
        assert!(
            pg.db
                .backup_into(&dir.path().join("x.db"))
                .await
                .unwrap_err()
                .to_string()
                .contains("pg_dump")
        );
    }
}

both!(
    the_signer_raises_an_alarm_and_stops_signing_when_its_tree_is_changed,
    |app| {
        let (ledger, _signer, _note) = signed(&app).await;
        drop_guards(&app.db).await;
        // Someone rewrites the tree the writer left: here the first leaf hash, under the
        // node its root starts from, which is computed from its leaves (a log this short
        // has no stored node); changes deeper down are verify's to find.
        let forged = match &app.db {
            Db::Sqlite(_, _) => format!("X'{}'", "00".repeat(32)),
            Db::Postgres(_) => format!("'\\x{}'::bytea", "00".repeat(32)),
        };
        let size = app.log_size().await as u64;
        assert!(Frontier::node_ids(size)[0].0 < store::audit_log::LOWEST_STORED);
        exec(
            &app.db,
            &format!("UPDATE audit_log SET leaf_hash = {forged} WHERE idx = 0"),
        )
        .await;
        // Writes go on, extending the writer's own tree...
        let out = ledger
            .submit(
                Context::system(),
                Command::Create {
                    kind: keeptrack::domain::record::RecordKind::Client,
                    fields: crate::helpers::fields(serde_json::json!({"last_name": "After"})),
                },
            )
            .await
            .unwrap();
        // ...but the next checkpoint reads the tree back, refuses to sign it, and leaves an
        // alarm entry in the log,
        let err = ledger
            .submit(Context::system(), Command::Checkpoint)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refusing to sign"), "{err}");
        let alarm = &app.latest(1).await[0];
        assert_eq!(alarm.act, keeptrack::domain::audit::Action::Alarm);
        assert_eq!(Some(alarm.i - 1), out.audit_index);
        assert!(
            alarm.diff[0].new.as_str().unwrap().contains("root"),
            "{alarm:?}"
        );
        // ...after which writes still go through and nothing is signed any more.
        app.client("Later").await;
        let err = ledger
            .submit(Context::system(), Command::Checkpoint)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refusing to sign"), "{err}");
    }
);

both!(an_entry_forged_to_end_a_block_stops_the_writer, |app| {
    let (ledger, _signer, _note) = signed(&app).await;
    let block = 1i64 << store::audit_log::LOWEST_STORED;
    let size = app.log_size().await;
    clients_at_once(&ledger, app.staff, (block - 1 - size) as usize).await;
    drop_guards(&app.db).await;
    // A well-formed entry at its own index under its own leaf hash: only the tree node
    // its append would have stored is missing.
    let last = block - 1;
    let bytes = store::audit_log::rows(&app.db, 1, 2, 1).await.unwrap()[0]
        .bytes
        .clone();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"i\":1,", &format!("\"i\":{last},"), 1);
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let lit = |b: &[u8]| match &app.db {
        Db::Sqlite(_, _) => format!("X'{}'", hex(b)),
        Db::Postgres(_) => format!("'\\x{}'::bytea", hex(b)),
    };
    exec(&app.db, &format!(
        "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, record_type, record_id, entry, leaf_hash) \
         SELECT {last}, ts, category, action, actor_kind, actor_id, record_type, record_id, {}, {} FROM audit_log WHERE idx = 1",
        lit(text.as_bytes()),
        lit(&leaf_hash(text.as_bytes()))
    ))
    .await;
    exec(
        &app.db,
        &format!("UPDATE log_head SET size = {block} WHERE id = 1"),
    )
    .await;
    let err = ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not cover them all"), "{err}");
    assert_eq!(
        app.log_size().await,
        block,
        "the writer fails closed and writes nothing"
    );
});

both!(a_log_that_predates_its_tree_gets_it_built, |app| {
    // Written before the tree: entries and a head with a size, no root, no nodes.
    let block = 1usize << store::audit_log::LOWEST_STORED;
    clients_at_once(&app.ledger, app.staff, block + 10).await;
    drop_guards(&app.db).await;
    exec(&app.db, "DELETE FROM audit_tree").await;
    exec(&app.db, "UPDATE log_head SET root = NULL WHERE id = 1").await;
    let ledger = Ledger::start(app.db.clone()).await.unwrap();
    let out = ledger
        .submit(
            Context::user(app.staff),
            Command::Create {
                kind: keeptrack::domain::record::RecordKind::Client,
                fields: crate::helpers::fields(serde_json::json!({"last_name": "After"})),
            },
        )
        .await
        .unwrap();
    assert!(out.audit_index.is_some());
    let stored = store::audit_log::nodes_in_range(&app.db, 0, u64::MAX)
        .await
        .unwrap();
    assert!(!stored.is_empty(), "the tree's stored levels are built");
    let report = verify_now(&app.db).await;
    assert!(report.findings.is_empty(), "{report:?}");
});

both!(entries_forged_past_the_tree_stop_the_writer, |app| {
    let (ledger, _signer, _note) = signed(&app).await;
    drop_guards(&app.db).await;
    let size = app.log_size().await;
    exec(&app.db, &format!(
        "INSERT INTO audit_log (idx, ts, category, action, actor_kind, actor_id, record_type, record_id, entry, leaf_hash) \
         SELECT {size}, ts, category, action, actor_kind, actor_id, record_type, record_id, entry, leaf_hash FROM audit_log WHERE idx = 1"
    )).await;
    exec(
        &app.db,
        &format!("UPDATE log_head SET size = {} WHERE id = 1", size + 1),
    )
    .await;
    let err = ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("changed outside Keeptrack"),
        "{err}"
    );
    assert_eq!(
        app.log_size().await,
        size + 1,
        "the writer fails closed and writes nothing"
    );
});
