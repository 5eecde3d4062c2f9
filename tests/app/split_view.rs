//! SPLIT VIEW: the log's key signed two logs that cannot both be true — two checkpoints
//! of one size with different roots, or a checkpoint that is not a prefix of a later one.
//! That is what showing the owner and an auditor different logs, or re-signing a rewrite
//! with a stolen key, leaves behind.

use keeptrack::{
    audit::{
        checkpoint::{Checkpoint, Signer},
        verify::{Damage, verify},
    },
    ledger::{Command, Context, Ledger},
};

use crate::both;
use crate::checkpoints::{anchors, rehash_everything, signed};
use crate::helpers::{TestApp, drop_guards, exec, run_cli};
use crate::incremental::set_entry;

/// A directory an auditor keeps: the log's public key and the checkpoints they were shown.
fn auditor_dir(signer: &Signer, notes: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("log.pub"), signer.verifier().to_vkey()).unwrap();
    let cps = dir.path().join("checkpoints");
    std::fs::create_dir(&cps).unwrap();
    for (n, note) in notes.iter().enumerate() {
        std::fs::write(cps.join(format!("{n}.checkpoint")), note).unwrap();
    }
    dir
}

fn verify_cli(app: &TestApp, dir: &tempfile::TempDir) -> (Option<i32>, String) {
    let out = run_cli(
        dir.path(),
        &app.url,
        &[
            "audit",
            "verify",
            "--key",
            "log.pub",
            "--checkpoints",
            "checkpoints",
        ],
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

both!(two_roots_for_one_size_are_a_split_view, |app| {
    let (_ledger, signer, note) = signed(&app).await;
    let size = app.log_size().await as u64;
    // The same key also signed another tree of the same size: someone was shown it.
    let other = signer.sign(&Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root: [9; 32],
    });
    let dir = auditor_dir(&signer, &[&note, &other]);
    let (code, text) = verify_cli(&app, &dir);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("TAMPERED: SplitView:"), "{text}");
    assert!(text.contains("with different roots"), "{text}");
    // Either checkpoint alone is no split view.
    let (code, text) = verify_cli(&app, &auditor_dir(&signer, &[&note]));
    assert_eq!(code, Some(0), "{text}");
});

both!(
    a_rewrite_re_signed_with_the_stolen_key_is_a_split_view,
    |app| {
        let (ledger, signer, old_note) = signed(&app).await;
        drop(ledger);
        // With SQL access and the key: edit an old entry, recompute the tree, and let a
        // freshly started signing writer (it remembers nothing) sign the result.
        drop_guards(&app.db).await;
        let row = keeptrack::store::audit_log::rows(&app.db, 1, 2, 1)
            .await
            .unwrap()
            .remove(0);
        let forged = String::from_utf8(row.bytes)
            .unwrap()
            .replace("\"act\":\"create\"", "\"act\":\"update\"");
        set_entry(&app.db, 1, forged.into_bytes()).await;
        exec(
            &app.db,
            "UPDATE audit_log SET action = 'update' WHERE idx = 1",
        )
        .await;
        rehash_everything(&app.db).await;
        let thief = Ledger::start_signing(
            app.db.clone(),
            Some(Signer::from_skey(&signer.to_skey()).unwrap()),
        )
        .await
        .unwrap();
        let new_note = thief
            .submit(Context::system(), Command::Checkpoint)
            .await
            .unwrap()
            .checkpoint
            .unwrap();
        let old_size = old_note.lines().nth(1).unwrap().parse::<i64>().unwrap();

        // The new checkpoint alone vouches for the rewritten log...
        let alone = verify(
            &app.db,
            keeptrack::audit::verify::Anchors {
                key: None,
                ..anchors(&signer, &new_note)
            },
            keeptrack::clock::now(),
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(alone.findings.is_empty(), "{alone:?}");
        // ...but the old one, kept off the machine, is not a prefix of it.
        let report = verify(
            &app.db,
            anchors(&signer, &old_note),
            keeptrack::clock::now(),
            |_, _| {},
        )
        .await
        .unwrap();
        let first = &report.findings[0];
        assert_eq!(
            (first.damage, first.index),
            (Damage::SplitView, Some(old_size - 1)),
            "{report:?}"
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.damage == Damage::Rewritten),
            "{report:?}"
        );
        let (code, text) = verify_cli(&app, &auditor_dir(&signer, &[&old_note, &new_note]));
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("is not a prefix of"), "{text}");
    }
);
