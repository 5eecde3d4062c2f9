//! `audit verify --from N`: trust the checkpoint of N entries, check the log still extends
//! it, and recompute only what follows — catching any edit there, in less time.

use std::time::{Duration, Instant};

use keeptrack::{
    audit::verify::{Damage, VerifyError, verify, verify_from},
    domain::record::RecordKind,
    ledger::{Command, Context},
};
use serde_json::json;

use crate::both;
use crate::checkpoints::{anchors, rehash_everything, signed};
use crate::helpers::{TestApp, drop_guards, exec, fields, run_cli};

/// The signed studio of `checkpoints::signed`, plus `more` entries after its checkpoint.
/// Returns the signer, the note and its size.
async fn checkpointed(
    app: &TestApp,
    more: usize,
) -> (keeptrack::audit::checkpoint::Signer, String, i64) {
    let (_ledger, signer, note) = signed(app).await;
    let size = app.log_size().await;
    for n in 0..more {
        app.client(&format!("After{n}")).await;
    }
    (signer, note, size)
}

/// Overwrites an entry's stored bytes, as an attacker with SQL access would.
pub(crate) async fn set_entry(db: &keeptrack::store::Db, idx: i64, bytes: Vec<u8>) {
    let sql = "UPDATE audit_log SET entry = $1 WHERE idx = $2";
    match db {
        keeptrack::store::Db::Sqlite(p, _) => sqlx::query(sql)
            .bind(bytes)
            .bind(idx)
            .execute(p)
            .await
            .map(|_| ()),
        keeptrack::store::Db::Postgres(p) => sqlx::query(sql)
            .bind(bytes)
            .bind(idx)
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

both!(verify_from_a_checkpoint_checks_only_what_follows, |app| {
    let (signer, note, n) = checkpointed(&app, 6).await;
    let size = app.log_size().await;
    let now = keeptrack::clock::now();
    let report = verify_from(
        &app.db,
        anchors(&signer, &note),
        Some(n as u64),
        now,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!((report.from, report.recomputed), (n, size - n));
    // The full run agrees on the root.
    let full = verify(&app.db, anchors(&signer, &note), now, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (full.root.as_str(), full.recomputed),
        (report.root.as_str(), size)
    );

    // An edit at N or later is found, with its index.
    drop_guards(&app.db).await;
    for victim in [n, size - 1] {
        exec(
            &app.db,
            &format!("UPDATE audit_log SET actor_id = 777 WHERE idx = {victim}"),
        )
        .await;
        let report = verify_from(
            &app.db,
            anchors(&signer, &note),
            Some(n as u64),
            now,
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(
            report
                .findings
                .iter()
                .any(|f| (f.damage, f.index) == (Damage::Edited, Some(victim))),
            "{report:?}"
        );
        assert_eq!(report.exit_code(), 1);
    }
});

both!(verify_from_trusts_what_the_checkpoint_covers, |app| {
    let (signer, note, n) = checkpointed(&app, 3).await;
    let now = keeptrack::clock::now();
    drop_guards(&app.db).await;
    // An edited column below N is for the full run to find (the run that trusted N did).
    exec(&app.db, "UPDATE audit_log SET actor_id = 777 WHERE idx = 2").await;
    let incremental = verify_from(
        &app.db,
        anchors(&signer, &note),
        Some(n as u64),
        now,
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(incremental.findings.is_empty(), "{incremental:?}");
    let full = verify(&app.db, anchors(&signer, &note), now, |_, _| {})
        .await
        .unwrap();
    assert_eq!(full.findings[0].index, Some(2), "{full:?}");
    // But a change to the bytes below N, hidden by re-hashing the tree, breaks the
    // checkpoint's root, which the incremental run checks first.
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
    let report = verify_from(
        &app.db,
        anchors(&signer, &note),
        Some(n as u64),
        now,
        |_, _| {},
    )
    .await
    .unwrap();
    let first = &report.findings[0];
    assert_eq!(
        (first.damage, first.index),
        (Damage::Rewritten, Some(n - 1)),
        "{report:?}"
    );
    // N must be a trusted checkpoint's size.
    let err = verify_from(&app.db, anchors(&signer, &note), Some(2), now, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::NoCheckpoint(2)), "{err}");
});

both!(
    verify_from_is_faster_and_says_so_on_the_command_line,
    |app| {
        // A log of a few thousand entries, written concurrently (group commit keeps it quick).
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..16 {
            let ledger = app.ledger.clone();
            let staff = app.staff;
            tasks.spawn(async move {
                for n in 0..120 {
                    let command = Command::Create {
                        kind: RecordKind::Client,
                        fields: fields(json!({ "last_name": format!("T{t}N{n}") })),
                    };
                    ledger.submit(Context::user(staff), command).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let (signer, note, n) = checkpointed(&app, 10).await;
        let now = keeptrack::clock::now();
        let fastest = |d: &mut Duration, t: Instant| *d = (*d).min(t.elapsed());
        let (mut full, mut incremental) = (Duration::MAX, Duration::MAX);
        let mut recomputed = (0, 0);
        for _ in 0..3 {
            let t = Instant::now();
            let r = verify(&app.db, anchors(&signer, &note), now, |_, _| {})
                .await
                .unwrap();
            fastest(&mut full, t);
            assert_eq!(r.exit_code(), 0, "{r:?}");
            recomputed.0 = r.recomputed;
            let t = Instant::now();
            let r = verify_from(
                &app.db,
                anchors(&signer, &note),
                Some(n as u64),
                now,
                |_, _| {},
            )
            .await
            .unwrap();
            fastest(&mut incremental, t);
            assert_eq!(r.exit_code(), 0, "{r:?}");
            recomputed.1 = r.recomputed;
        }
        // The work saved, which does not depend on what else the machine is doing, and
        // the time (whose ratio does: tests run side by side).
        assert!(
            recomputed.1 * 10 < recomputed.0,
            "incremental recomputed {} entries, full {}",
            recomputed.1,
            recomputed.0
        );
        assert!(
            incremental < full,
            "incremental {incremental:?} vs full {full:?} over {n} entries"
        );

        // Through the command line, with the key and checkpoint kept in files.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("log.pub");
        std::fs::write(&key, signer.verifier().to_vkey()).unwrap();
        let cps = dir.path().join("checkpoints");
        std::fs::create_dir(&cps).unwrap();
        std::fs::write(cps.join(format!("{n:012}.checkpoint")), &note).unwrap();
        let (key, cps) = (key.to_str().unwrap(), cps.to_str().unwrap());
        let args = |from: &str| {
            [
                "audit",
                "verify",
                "--key",
                key,
                "--checkpoints",
                cps,
                "--from",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([from.to_owned()])
            .collect::<Vec<_>>()
        };
        let run = |from: &str| {
            let a = args(from);
            run_cli(
                dir.path(),
                &app.url,
                &a.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        };
        let out = run(&n.to_string());
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains("recomputed 10 entries from there"), "{text}");
        let out = run("3");
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no trusted checkpoint has 3 entries"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
);
