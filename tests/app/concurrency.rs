//! One gapless log under load: 64 writers × 1,000 writes while verify runs alongside,
//! and on PostgreSQL two server processes sharing one database.
//! Writes per writer: KEEPTRACK_LOAD_WRITES (default 1000).

use std::process::{Command, Stdio};

use keeptrack::{
    domain::record::RecordKind,
    ledger::{Command as LedgerCommand, Context},
    store::{self, Db},
};
use serde_json::json;
use sqlx::Connection;

use crate::both;
use crate::helpers::{new_database_url, verify_now};

fn writes() -> usize {
    std::env::var("KEEPTRACK_LOAD_WRITES")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1000)
}

both!(
    sixty_four_writers_one_gapless_log_while_verify_runs,
    |app| {
        let per_writer = writes();
        let start = app.log_size().await;
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..64 {
            let (ledger, staff) = (app.ledger.clone(), app.staff);
            writers.spawn(async move {
                let mut indices = Vec::with_capacity(per_writer);
                for n in 0..per_writer {
                    let fields =
                        json!({"first_name": format!("W{w}"), "last_name": format!("N{n}")});
                    let command = LedgerCommand::Create {
                        kind: RecordKind::Client,
                        fields: fields.as_object().cloned().unwrap(),
                    };
                    let out = ledger.submit(Context::user(staff), command).await.unwrap();
                    indices.push(out.audit_index.unwrap());
                }
                indices
            });
        }
        let db = app.db.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let checker = tokio::spawn(async move {
            let mut passes = 0;
            while !*stopped.borrow_and_update() {
                let report = verify_now(&db).await;
                assert!(
                    report.findings.is_empty(),
                    "verify during the load: {report:?}"
                );
                passes += 1;
            }
            passes
        });
        let mut all: Vec<i64> = writers.join_all().await.into_iter().flatten().collect();
        stop.send(true).unwrap();
        let passes = checker
            .await
            .expect("verify found nothing wrong while the writers wrote");
        assert!(
            passes >= 2,
            "verify should run during the load ({passes} passes)"
        );
        all.sort_unstable();
        let total = i64::try_from(64 * per_writer).unwrap();
        assert_eq!(
            all,
            (start..start + total).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
        let report = verify_now(&app.db).await;
        assert!(report.findings.is_empty(), "{report:?}");
        assert_eq!(report.entries, start + total);
    }
);

/// Two `keeptrack` processes writing to one PostgreSQL database make one log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database_make_one_log() {
    let Some((url, _dir)) = new_database_url(true).await else {
        return;
    };
    // Create the schema first, so the two processes do not race to migrate.
    Db::open(&url).await.unwrap().close().await;
    let per_writer = (writes() / 2).max(1).to_string();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_keeptrack"))
            .args(["stress", "--writers", "32", "--writes", &per_writer])
            .env("KEEPTRACK_DATABASE_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let acks = String::from_utf8(a.stdout).unwrap().lines().count()
        + String::from_utf8(b.stdout).unwrap().lines().count();
    assert_eq!(acks, 64 * per_writer.parse::<usize>().unwrap());
    let db = Db::connect(&url).await.unwrap();
    let report = verify_now(&db).await;
    assert!(report.findings.is_empty(), "{report:?}");
    // Both processes installed nothing twice: one origin, one install entry.
    let installs = keeptrack::audit::list(
        &db,
        &keeptrack::audit::Query {
            action: Some(keeptrack::domain::audit::Action::Install),
            limit: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(installs.entries.len(), 1);
    assert_eq!(
        store::records::count(&db, RecordKind::Client)
            .await
            .unwrap() as usize,
        acks
    );
}

both!(
    concurrent_changes_to_a_few_clients_each_build_on_the_one_before,
    |app| {
        // Many commands on the same few clients land in the same batches, where the
        // writer on PostgreSQL reads the batch's clients ahead: each command must still
        // find its client as the command before it left it.
        let mut clients = Vec::new();
        for name in ["Able", "Baker", "Charlie", "Dog", "Easy"] {
            clients.push(app.client(name).await.id);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..24 {
            let (ledger, staff, id) = (app.ledger.clone(), app.staff, clients[t % 5]);
            tasks.spawn(async move {
                for n in 0..9 {
                    let command = if n % 3 == 2 {
                        LedgerCommand::AppendNotes {
                            kind: RecordKind::Client,
                            id,
                            text: format!("task {t}, line {n}"),
                            stamp: false,
                        }
                    } else {
                        let fields = json!({"city": format!("City {t}-{n}")});
                        LedgerCommand::Update {
                            kind: RecordKind::Client,
                            id,
                            fields: fields.as_object().cloned().unwrap(),
                            expected_version: None,
                        }
                    };
                    let ctx = Context::user(staff).with_reason(format!("task {t}"));
                    ledger.submit(ctx, command).await.unwrap();
                }
            });
        }
        tasks.join_all().await;
        for (i, id) in clients.iter().enumerate() {
            let tasks = (0..24).filter(|t| t % 5 == i).count();
            let client = app.get(RecordKind::Client, *id).await;
            assert_eq!(
                client.version,
                1 + 6 * tasks as i64,
                "one version per update"
            );
            let notes = app.notes(RecordKind::Client, *id).await;
            // Three lines added and six updates' reasons stamped per task.
            assert_eq!(notes.text.lines().count(), 9 * tasks, "every line kept");
        }
        assert!(verify_now(&app.db).await.findings.is_empty());
    }
);

/// PostgreSQL: a batch reads ahead before it takes the log's lock, and commits in its
/// last statement. Another server's writer that commits in between (here a bare
/// transaction that takes the lock the way every writer does, and switches off the user
/// this server last saw acting) must make the batch run again under the lock, where it
/// sees the change, rather than commit what it decided on what it had kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_another_writer_overtook_runs_again_under_the_lock() {
    let Some(app) = crate::helpers::TestApp::postgres().await else {
        return;
    };
    let client = app.client("Smith").await;
    app.update(RecordKind::Client, client.id, json!({"city": "Leeds"}))
        .await
        .unwrap();
    let mut other = sqlx::PgConnection::connect(&app.url).await.unwrap();
    let sql = format!(
        "BEGIN; UPDATE log_head SET writes = writes + 1 WHERE id = 1; \
         UPDATE users SET active = false WHERE id = {}",
        app.staff
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut other)
        .await
        .unwrap();
    let (ledger, staff, id) = (app.ledger.clone(), app.staff, client.id);
    let update = tokio::spawn(async move {
        let fields = json!({"email": "smith@example.com"});
        let command = LedgerCommand::Update {
            kind: RecordKind::Client,
            id,
            fields: fields.as_object().cloned().unwrap(),
            expected_version: None,
        };
        ledger
            .submit(Context::user(staff).with_reason("Asked"), command)
            .await
    });
    // The batch waits for the other writer's lock.
    let mut admin = sqlx::PgConnection::connect(&app.url).await.unwrap();
    let mut waited = 0;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        waited += 1;
        assert!(waited < 500, "the batch never waited for the lock");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    let refused = update.await.unwrap();
    assert!(
        matches!(refused, Err(keeptrack::ledger::Error::NotPermitted(_))),
        "{refused:?}"
    );
    let unchanged = app.get(RecordKind::Client, client.id).await;
    assert_eq!(unchanged.fields["email"], client.fields["email"]);
    assert_eq!(unchanged.version, 2, "the update of the city only");
}
