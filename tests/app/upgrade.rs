//! Databases written by earlier builds upgrade in place. A log written before the leaves
//! left the tree table (migration 0007) still verifies against the checkpoints signed
//! before, its entries still prove, and it goes on growing consistently with them.
//! Notes saved before revisions kept their changes (0013) show the same history.

use std::borrow::Cow;

use keeptrack::{
    audit::{
        checkpoint::{Signer, Verifier},
        history::{self, Item},
        proof,
        verify::{Anchors, verify},
    },
    domain::record::RecordKind,
    ledger::{Command, Context, Ledger},
    store::{Db, audit_log, preferences},
};

use crate::helpers::{exec, fields, new_database_url};

async fn count(db: &Db, sql: &'static str) -> i64 {
    match db {
        Db::Sqlite(p, _) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
    }
}

async fn add_clients(ledger: &Ledger, n: usize) {
    for k in 0..n {
        let f = fields(serde_json::json!({"last_name": format!("Client {k}")}));
        ledger
            .submit(
                Context::system(),
                Command::Create {
                    kind: RecordKind::Client,
                    fields: f,
                },
            )
            .await
            .unwrap();
    }
}

async fn checkpoint(db: &Db, signer: &Signer) -> String {
    let ledger = Ledger::start_signing(
        db.clone(),
        Some(Signer::from_skey(&signer.to_skey()).unwrap()),
    )
    .await
    .unwrap();
    ledger
        .submit(Context::system(), Command::Checkpoint)
        .await
        .unwrap()
        .checkpoint
        .unwrap()
}

/// Applies the migrations before `version`, as an earlier build left the database.
async fn migrate_before(db: &Db, version: i64) {
    let mut before = match db {
        Db::Sqlite(_, _) => sqlx::migrate!("migrations/sqlite"),
        Db::Postgres(_) => sqlx::migrate!("migrations/postgres"),
    };
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect(),
    );
    match db {
        Db::Sqlite(p, _) => before.run(p).await.unwrap(),
        Db::Postgres(p) => before.run(p).await.unwrap(),
    }
}

/// Runs `sql` as `exec` does, but on SQLite on a connection of its own, for the steps that
/// change the schema. One from the pool may hold the schema as it was before another
/// connection changed it, and a DROP COLUMN looks its column up in that copy without
/// reading the schema again (a missing table makes SQLite check; a missing column does
/// not, in the bundled sqlite3.c): dropping a column another connection added failed so,
/// now and then, in CI.
async fn alter(db: &Db, url: &str, sql: &str) {
    match db {
        Db::Sqlite(_, _) => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            conn.close().await.unwrap();
        }
        Db::Postgres(_) => exec(db, sql).await,
    }
}

/// This build's writer links each entry to its record's previous one (migration 15 on
/// SQLite, 16 on PostgreSQL), which an older writer did not: the link and the heads are
/// there while it writes the old log, and gone again before the upgrade adds them back,
/// links made anew from the entries.
async fn old_writer(db: &Db, url: &str, writing: bool) {
    let mut sql: Vec<String> = Vec::new();
    let sqlite = matches!(db, Db::Sqlite(_, _));
    // SQLite keeps each head on its record's row, PostgreSQL in a table of heads.
    let heads_sqlite = RecordKind::ALL.map(|k| k.table());
    if writing {
        sql.push("ALTER TABLE audit_log ADD COLUMN prev_idx BIGINT".into());
        if sqlite {
            for t in heads_sqlite {
                sql.push(format!("ALTER TABLE {t} ADD COLUMN audit_head BIGINT"));
            }
        } else {
            sql.push(
                "CREATE TABLE audit_heads (record_type TEXT NOT NULL, \
                 record_id BIGINT NOT NULL, head BIGINT NOT NULL, \
                 PRIMARY KEY (record_type, record_id))"
                    .into(),
            );
        }
    } else {
        if sqlite {
            for t in heads_sqlite {
                sql.push(format!("ALTER TABLE {t} DROP COLUMN audit_head"));
            }
        } else {
            sql.push("DROP TABLE audit_heads".into());
        }
        sql.push("ALTER TABLE audit_log DROP COLUMN prev_idx".into());
    }
    for sql in sql {
        alter(db, url, &sql).await;
    }
}

async fn upgrade(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let db = Db::connect(&url).await.unwrap();
    migrate_before(&db, 7).await;
    // This build's writer counts its transactions in the head (0009), which the old
    // writer did not: the column is there while it writes the old log, and gone again
    // before the upgrade adds it.
    let head_writes = "ALTER TABLE log_head ADD COLUMN writes BIGINT NOT NULL DEFAULT 0";
    alter(&db, &url, head_writes).await;
    // Likewise it keys tree nodes by their leaf (0012): it writes a table of that shape,
    // whose nodes go back into the old table, guards and all, before the upgrade.
    alter(&db, &url, "ALTER TABLE audit_tree RENAME TO audit_tree_old").await;
    alter(
        &db,
        &url,
        "CREATE TABLE audit_tree (leaf BIGINT NOT NULL, level BIGINT NOT NULL, \
         hash BYTEA NOT NULL, PRIMARY KEY (leaf, level))",
    )
    .await;
    old_writer(&db, &url, true).await;
    let ledger = Ledger::start(db.clone()).await.unwrap();
    add_clients(&ledger, 12).await;
    let origin = preferences::all(&db).await.unwrap()["log.origin"].clone();
    let signer = Signer::generate(&origin).unwrap();
    let key = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
    let old = checkpoint(&db, &signer).await;
    drop(ledger);
    alter(&db, &url, "ALTER TABLE log_head DROP COLUMN writes").await;
    for sql in [
        "INSERT INTO audit_tree_old (level, idx, hash) \
         SELECT level, ((leaf + 1) >> CAST(level AS INTEGER)) - 1, hash FROM audit_tree",
        "DROP TABLE audit_tree",
        "ALTER TABLE audit_tree_old RENAME TO audit_tree",
    ] {
        alter(&db, &url, sql).await;
    }
    // The writer before 0007 also stored every leaf hash as level 0 of the tree table.
    for row in audit_log::rows(&db, 0, i64::MAX, 10_000).await.unwrap() {
        let hex: String = row.leaf_hash.iter().map(|b| format!("{b:02x}")).collect();
        let lit = match &db {
            Db::Sqlite(_, _) => format!("X'{hex}'"),
            Db::Postgres(_) => format!("'\\x{hex}'::bytea"),
        };
        exec(
            &db,
            &format!(
                "INSERT INTO audit_tree (level, idx, hash) VALUES (0, {}, {lit})",
                row.idx
            ),
        )
        .await;
    }

    assert!(count(&db, "SELECT COUNT(*) FROM audit_tree WHERE level = 0").await > 12);
    old_writer(&db, &url, false).await;
    db.migrate().await.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM audit_tree WHERE level = 0").await,
        0
    );
    // A log this short has no node at a stored level: its proofs come from its leaves.
    let old_size = key.open(old.as_bytes()).unwrap().size;
    for index in 0..old_size {
        let bundle = proof::prove(&db, index, &key).await.unwrap();
        proof::check(&serde_json::to_vec(&bundle).unwrap(), Some(&key)).unwrap();
    }
    // The guards are back: the tree is still append-only (it has no row to try them on).
    let guards = audit_log::guard_triggers(&db).await.unwrap();
    assert!(
        guards.iter().any(|g| g.contains("audit_tree")),
        "the tree table lost its guard: {guards:?}"
    );

    // History walks the links the upgrade made: each client shows its creation.
    let first = count(&db, "SELECT MIN(id) FROM clients").await;
    let shown = history::timeline(&db, RecordKind::Client, first, None, 10)
        .await
        .unwrap();
    assert!(
        shown.items.iter().any(|i| matches!(i, Item::Audit { .. })),
        "{shown:?}"
    );
    let ledger = Ledger::start(db.clone()).await.unwrap();
    add_clients(&ledger, 9).await;
    let new = checkpoint(&db, &signer).await;
    let anchors = Anchors {
        checkpoints: [&old, &new]
            .into_iter()
            .map(|n| {
                (
                    "kept off the machine".to_owned(),
                    key.open(n.as_bytes()).unwrap(),
                )
            })
            .collect(),
        key: Some(key),
        warnings: vec![],
    };
    let report = verify(&db, anchors, keeptrack::clock::now(), |_, _| {})
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_from_before_the_leaves_moved_upgrades_and_verifies_sqlite() {
    upgrade(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_from_before_the_leaves_moved_upgrades_and_verifies_postgres() {
    upgrade(true).await;
}

/// What each revision of a client's notes changed, newest first, as history shows it.
async fn notes_changes(db: &Db, id: i64, limit: i64) -> Vec<(i64, Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = history::timeline(db, RecordKind::Client, id, cursor.as_deref(), limit)
            .await
            .unwrap();
        for item in page.items {
            if let Item::Notes {
                revision, change, ..
            } = item
            {
                out.push((revision, change.removed, change.added));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

async fn notes_upgrade(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let db = Db::connect(&url).await.unwrap();
    migrate_before(&db, 13).await;
    old_writer(&db, &url, true).await;
    let ledger = Ledger::start(db.clone()).await.unwrap();
    add_clients(&ledger, 1).await;
    drop(ledger);
    old_writer(&db, &url, false).await;
    // Three saves as the writer before 0013 stored them: whole texts, no change.
    let id = count(&db, "SELECT MAX(id) FROM clients").await;
    for (revision, body) in [
        (1, "Called."),
        (2, "Called.\nBooked."),
        (3, "Called.\nBooked for Friday."),
    ] {
        exec(
            &db,
            &format!(
                "INSERT INTO note_revisions (record_type, record_id, revision, ts, \
                 author_kind, author_id, author_initials, author_name, body) \
                 VALUES ('client', {id}, {revision}, {revision}000000, 'user', NULL, 'MKH', \
                 'Mary', '{body}')"
            ),
        )
        .await;
    }

    db.migrate().await.unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM note_revisions WHERE change IS NULL"
        )
        .await,
        3
    );
    for sql in [
        "UPDATE note_revisions SET body = 'x'",
        "DELETE FROM note_revisions",
    ] {
        let refused = match &db {
            Db::Sqlite(p, _) => sqlx::query(sql).execute(p).await.is_err(),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.is_err(),
        };
        assert!(
            refused,
            "{sql} went through: the revisions lost their guard"
        );
    }
    let ledger = Ledger::start(db.clone()).await.unwrap();
    let added = ledger
        .submit(
            Context::system(),
            Command::AppendNotes {
                kind: RecordKind::Client,
                id,
                text: "Paid the deposit.".into(),
                stamp: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(added.notes_revision, Some(4));
    ledger
        .submit(
            Context::system(),
            Command::SaveNotes {
                kind: RecordKind::Client,
                id,
                text: "Called.\nBooked for Saturday.\nPaid the deposit.".into(),
                base_revision: 4,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM note_revisions WHERE change IS NULL"
        )
        .await,
        3,
        "the new revisions keep their changes"
    );

    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let expected = vec![
        (
            5,
            owned(&["Booked for Friday."]),
            owned(&["Booked for Saturday."]),
        ),
        (4, owned(&[]), owned(&["Paid the deposit."])),
        (3, owned(&["Booked."]), owned(&["Booked for Friday."])),
        (2, owned(&[]), owned(&["Booked."])),
        (1, owned(&[]), owned(&["Called."])),
    ];
    assert_eq!(notes_changes(&db, id, 100).await, expected);
    // Pages that end between the old revisions and the new show the same.
    for limit in 1..=3 {
        assert_eq!(
            notes_changes(&db, id, limit).await,
            expected,
            "pages of {limit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_saved_before_revisions_kept_their_changes_show_the_same_history_sqlite() {
    notes_upgrade(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_saved_before_revisions_kept_their_changes_show_the_same_history_postgres() {
    notes_upgrade(true).await;
}
