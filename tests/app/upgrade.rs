//! A log written before the leaves left the tree table (migration 0007) upgrades in
//! place: it still verifies against the checkpoints signed before, its entries still
//! prove, and it goes on growing consistently with them.

use std::borrow::Cow;

use keeptrack::{
    audit::{
        checkpoint::{Signer, Verifier},
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

async fn upgrade(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let db = Db::connect(&url).await.unwrap();
    let mut before = match &db {
        Db::Sqlite(_, _) => sqlx::migrate!("migrations/sqlite"),
        Db::Postgres(_) => sqlx::migrate!("migrations/postgres"),
    };
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 7)
            .cloned()
            .collect(),
    );
    match &db {
        Db::Sqlite(p, _) => before.run(p).await.unwrap(),
        Db::Postgres(p) => before.run(p).await.unwrap(),
    }
    // This build's writer counts its transactions in the head (0009), which the old
    // writer did not: the column is there while it writes the old log, and gone again
    // before the upgrade adds it.
    let head_writes = "ALTER TABLE log_head ADD COLUMN writes BIGINT NOT NULL DEFAULT 0";
    exec(&db, head_writes).await;
    // Likewise it keys tree nodes by their leaf (0012): it writes a table of that shape,
    // whose nodes go back into the old table, guards and all, before the upgrade.
    exec(&db, "ALTER TABLE audit_tree RENAME TO audit_tree_old").await;
    exec(
        &db,
        "CREATE TABLE audit_tree (leaf BIGINT NOT NULL, level BIGINT NOT NULL, \
         hash BYTEA NOT NULL, PRIMARY KEY (leaf, level))",
    )
    .await;
    let ledger = Ledger::start(db.clone()).await.unwrap();
    add_clients(&ledger, 12).await;
    let origin = preferences::all(&db).await.unwrap()["log.origin"].clone();
    let signer = Signer::generate(&origin).unwrap();
    let key = Verifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
    let old = checkpoint(&db, &signer).await;
    drop(ledger);
    exec(&db, "ALTER TABLE log_head DROP COLUMN writes").await;
    let back = [
        "INSERT INTO audit_tree_old (level, idx, hash) \
         SELECT level, ((leaf + 1) >> CAST(level AS INTEGER)) - 1, hash FROM audit_tree",
        "DROP TABLE audit_tree",
        "ALTER TABLE audit_tree_old RENAME TO audit_tree",
    ];
    match &db {
        // One SQLite connection for all three: another one in the pool may still hold the
        // schema from before the DROP, and a RENAME checks names against its own copy.
        Db::Sqlite(_, _) => exec(&db, &back.join("; ")).await,
        Db::Postgres(_) => {
            for sql in back {
                exec(&db, sql).await;
            }
        }
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
    db.migrate().await.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM audit_tree WHERE level = 0").await,
        0
    );
    assert!(count(&db, "SELECT COUNT(*) FROM audit_tree").await > 0);
    let old_size = key.open(old.as_bytes()).unwrap().size;
    for index in 0..old_size {
        let bundle = proof::prove(&db, index, &key).await.unwrap();
        proof::check(&serde_json::to_vec(&bundle).unwrap(), Some(&key)).unwrap();
    }
    // The guards are back: the tree is still append-only.
    let refused = match &db {
        Db::Sqlite(p, _) => sqlx::query("DELETE FROM audit_tree")
            .execute(p)
            .await
            .is_err(),
        Db::Postgres(p) => sqlx::query("DELETE FROM audit_tree")
            .execute(p)
            .await
            .is_err(),
    };
    assert!(refused, "the tree table lost its guard");

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
