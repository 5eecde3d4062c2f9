//! Archiving: old entries' bodies move into a signed archive file that checks on its own;
//! the tree keeps their hashes, so the live log still verifies; the run is a System entry;
//! the retention preference schedules it. And the database still refuses every other
//! UPDATE or DELETE of the log.

use jiff::{SignedDuration, Timestamp};
use keeptrack::{
    audit::{
        checkpoint::{Signer, create_key_files, public_key_path},
        history,
        verify::Damage,
    },
    clock::Clock,
    domain::{audit::Action, record::RecordKind},
    ledger::{Command, Context, Ledger},
    store::{self, Db},
};
use serde_json::{Value, json};

use crate::both;
use crate::cli::{Server, workdir};
use crate::helpers::{TestApp, fields, new_database_url, run_cli, until_all_keyed, verify_now};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The log's signing key, written where the `keeptrack` command looks for it.
async fn key_in(dir: &std::path::Path, db: &Db) -> Signer {
    let origin = store::preferences::all(db).await.unwrap()["log.origin"].clone();
    create_key_files(&dir.join("keeptrack.key"), &origin).unwrap()
}

/// Some clients, then the instant after them, then some more: returns the instant, the
/// log's size at it and the first client.
async fn history(app: &TestApp, tag: &str) -> (Timestamp, i64, i64) {
    let first = app.client(&format!("{tag}0")).await.id;
    for n in 1..4 {
        app.client(&format!("{tag}{n}")).await;
    }
    let (at, size) = (keeptrack::clock::now(), app.log_size().await);
    for n in 0..2 {
        app.client(&format!("{tag}Later{n}")).await;
    }
    (at, size, first)
}

both!(
    archived_entries_check_alone_and_the_log_still_verifies,
    |app| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        key_in(d, &app.db).await;
        let (t1, n1, old) = history(&app, "Old").await;

        let out = run_cli(
            d,
            &app.url,
            &[
                "audit",
                "archive",
                "--before",
                &t1.to_string(),
                "--out",
                "a1.json",
            ],
        );
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains(&format!(
                "Archived entries 0 to {} ({n1} entries) to a1.json",
                n1 - 1
            )),
            "{said}"
        );
        // The file checks with no database at all.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keeptrack"))
            .current_dir(d)
            .args([
                "audit",
                "check-archive",
                "a1.json",
                "--key",
                "keeptrack.key.pub",
            ])
            .env(
                "KEEPTRACK_DATABASE_URL",
                "sqlite:///nonexistent/dir/never.db",
            )
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(
            said.starts_with(&format!("ARCHIVE OK: entries 0 to {}", n1 - 1)),
            "{said}"
        );

        // The live log still verifies end to end, counting what is archived.
        let out = run_cli(d, &app.url, &["audit", "verify"]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(said.contains(&format!("{n1} of them archived")), "{said}");
        // The run is on record; archived entries no longer list, and have no live proof.
        let runs = app.latest(1000).await;
        assert!(
            runs.iter().all(|e| e.i >= n1),
            "archived entries still list"
        );
        let run = runs.iter().find(|e| e.act == Action::Archive).unwrap();
        assert_eq!(run.diff[0].new, json!(0));
        assert_eq!(run.diff[1].new, json!(n1));
        // A record's history shows what is left of it, its keys copied or not.
        app.update(RecordKind::Client, old, json!({"email": "old@example.com"}))
            .await
            .unwrap();
        let audited = |page: &history::Timeline| {
            page.items
                .iter()
                .filter(|i| matches!(i, history::Item::Audit { .. }))
                .count()
        };
        let page = history::timeline(&app.db, RecordKind::Client, old, None, 10)
            .await
            .unwrap();
        assert_eq!(audited(&page), 1, "{page:?}");
        until_all_keyed(&app.db).await;
        let page = history::timeline(&app.db, RecordKind::Client, old, None, 10)
            .await
            .unwrap();
        assert_eq!(audited(&page), 1, "{page:?}");
        assert!(page.next.is_none(), "{page:?}");
        let out = run_cli(d, &app.url, &["audit", "prove", "1", "--out", "p.json"]);
        assert!(text(&out).contains("entry 1 is archived"), "{}", text(&out));
        let out = run_cli(
            d,
            &app.url,
            &[
                "audit",
                "archive",
                "--before",
                &t1.to_string(),
                "--out",
                "again.json",
            ],
        );
        assert!(text(&out).contains("Nothing to archive"), "{}", text(&out));
        assert!(!d.join("again.json").exists());

        // A second run continues the first; the two files chain into one log.
        let (t2, n2, _) = history(&app, "Newer").await;
        let out = run_cli(
            d,
            &app.url,
            &[
                "audit",
                "archive",
                "--before",
                &t2.to_string(),
                "--out",
                "a2.json",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let out = run_cli(
            d,
            &app.url,
            &[
                "audit",
                "check-archive",
                "a2.json",
                "a1.json",
                "--key",
                "keeptrack.key.pub",
            ],
        );
        let said = text(&out);
        assert_eq!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!(
                "The archives chain into one log: entries 0 to {}.",
                n2 - 1
            )),
            "{said}"
        );
        let out = run_cli(d, &app.url, &["audit", "verify"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains(&format!("{n2} of them archived")));

        // An altered archive, or a key that did not sign it, fails.
        let altered = std::fs::read_to_string(d.join("a1.json"))
            .unwrap()
            .replacen("Old1", "Olx1", 1);
        std::fs::write(d.join("bad.json"), altered).unwrap();
        let out = run_cli(
            d,
            &app.url,
            &[
                "audit",
                "check-archive",
                "bad.json",
                "--key",
                "keeptrack.key.pub",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).starts_with("NOT VALID"), "{}", text(&out));
        let stranger = Signer::generate("someone").unwrap().verifier().to_vkey();
        let out = run_cli(
            d,
            &app.url,
            &["audit", "check-archive", "a1.json", "--key", &stranger],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    }
);

/// Runs SQL and says whether the database allowed it.
async fn allowed(db: &Db, sql: &str) -> bool {
    match db {
        Db::Sqlite(p, _) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .is_ok(),
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .is_ok(),
    }
}

both!(
    only_an_archive_run_can_empty_a_body_and_nothing_else_changes,
    |app| {
        let dir = tempfile::tempdir().unwrap();
        let signer = key_in(dir.path(), &app.db).await;
        let ledger = Ledger::start_signing(app.db.clone(), Some(signer))
            .await
            .unwrap();
        let (t1, n1, _) = history(&app, "Old").await;

        // A run that cannot write its file writes nothing at all.
        let taken = dir.path().join("taken.json");
        std::fs::write(&taken, "someone else's").unwrap();
        let size = app.log_size().await;
        let err = ledger
            .submit(
                Context::system(),
                Command::Archive {
                    before: t1,
                    out: taken,
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("taken.json"), "{err}");
        assert_eq!(app.log_size().await, size);
        assert!(
            store::audit_log::archive_runs(&app.db)
                .await
                .unwrap()
                .is_empty()
        );

        let out = ledger
            .submit(
                Context::system(),
                Command::Archive {
                    before: t1,
                    out: dir.path().to_owned(),
                },
            )
            .await
            .unwrap();
        let done = out.archived.unwrap();
        assert_eq!((done.first, done.end, done.more), (0, n1, false));
        assert!(
            done.file
                .ends_with(format!("archive-000000000000-{n1:012}.json"))
        );

        // Direct SQL, with the guard triggers in place, changes nothing else.
        let empty = match app.db {
            Db::Sqlite(_, _) => "X''",
            Db::Postgres(_) => "'\\x'::bytea",
        };
        let last = app.log_size().await - 1;
        let refused = [
            format!("UPDATE audit_log SET entry = {empty} WHERE idx = {last}"),
            format!("UPDATE audit_log SET entry = {empty} WHERE idx = {n1}"),
            "UPDATE audit_log SET entry = NULL WHERE idx = 0".to_owned(),
            "UPDATE audit_log SET leaf_hash = leaf_hash || leaf_hash WHERE idx = 0".to_owned(),
            "UPDATE audit_log SET ts = 5 WHERE idx = 0".to_owned(),
            format!("UPDATE audit_log SET idx = 999999, entry = {empty} WHERE idx = {n1}"),
            "DELETE FROM audit_log WHERE idx = 0".to_owned(),
            "UPDATE audit_archive SET to_idx = 1000".to_owned(),
            "DELETE FROM audit_archive".to_owned(),
        ];
        for sql in &refused {
            assert!(!allowed(&app.db, sql).await, "allowed: {sql}");
        }
        let report = verify_now(&app.db).await;
        assert!(report.findings.is_empty(), "{report:?}");
        assert_eq!(report.archived, n1);

        // Forging an archive run opens the guard rail; verify is the guarantee, and finds
        // the body gone with no archive entry in the log to account for it.
        assert!(
            allowed(
                &app.db,
                &format!(
                    "INSERT INTO audit_archive (from_idx, to_idx, entry_idx, tree_size, ts, file) \
                 VALUES ({n1}, {}, 999999, 0, 0, 'forged')",
                    n1 + 1
                )
            )
            .await
        );
        assert!(
            allowed(
                &app.db,
                &format!("UPDATE audit_log SET entry = {empty} WHERE idx = {n1}")
            )
            .await
        );
        let report = verify_now(&app.db).await;
        let first = &report.findings[0];
        assert_eq!(
            (first.damage, first.index),
            (Damage::Edited, Some(n1)),
            "{report:?}"
        );
        assert!(
            first.detail.contains("no archive run covers it"),
            "{report:?}"
        );
    }
);

/// `keeptrack serve` archives what is older than `audit.retention_days`, on its schedule.
async fn serve_applies_the_retention_preference(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    // Three days of history, written with a clock set three days back.
    let db = Db::open(&url).await.unwrap();
    let clock = Clock::default();
    clock.shift(SignedDuration::from_hours(-72));
    let ledger = Ledger::start_with_clock(db.clone(), None, clock.clone())
        .await
        .unwrap();
    let create = |name: &str| Command::Create {
        kind: RecordKind::Client,
        fields: fields(json!({ "last_name": name })),
    };
    for n in 0..3 {
        ledger
            .submit(Context::system(), create(&format!("Old{n}")))
            .await
            .unwrap();
    }
    let old = store::audit_log::size(&db).await.unwrap();
    clock.shift(SignedDuration::from_hours(72));
    ledger
        .submit(Context::system(), create("Recent"))
        .await
        .unwrap();
    let err = ledger
        .submit(
            Context::system(),
            Command::SetPreference {
                key: "audit.retention_days".into(),
                value: "0".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("from 1 to"), "{err}");
    ledger
        .submit(
            Context::system(),
            Command::SetPreference {
                key: "audit.retention_days".into(),
                value: "1".into(),
            },
        )
        .await
        .unwrap();
    drop(ledger);
    db.close().await;

    let server = Server::start_with(&url, &["--archive-every", "1"]);
    // The file is written before the run commits: wait for the run itself.
    let db = Db::open(&url).await.unwrap();
    for _ in 0..100 {
        if !store::audit_log::archive_runs(&db)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.close().await;
    drop(server);
    let files: Vec<_> = std::fs::read_dir(workdir(&url).join("archives"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].to_str().unwrap();
    let key = public_key_path(&workdir(&url).join("keeptrack.key"));
    let out = run_cli(
        &workdir(&url),
        &url,
        &[
            "audit",
            "check-archive",
            file,
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.starts_with(&format!("ARCHIVE OK: entries 0 to {} ", old - 1)),
        "{said}"
    );
    let out = run_cli(&workdir(&url), &url, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{old} of them archived")),
        "{}",
        text(&out)
    );
    let page: Value = serde_json::from_slice(
        &run_cli(
            &workdir(&url),
            &url,
            &["audit", "list", "--action", "archive", "--format", "json"],
        )
        .stdout,
    )
    .unwrap();
    let runs = page["entries"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["actor"]["initials"], "SPSA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_the_retention_preference_sqlite() {
    serve_applies_the_retention_preference(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_the_retention_preference_postgres() {
    serve_applies_the_retention_preference(true).await;
}
