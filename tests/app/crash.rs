//! Crash safety: `kill -9` a process with 32 concurrent writers at a random moment,
//! again and again. Every acknowledged write must be there with its audit entry, nothing
//! unacknowledged may be half-written, and the log must verify.
//! Runs: KEEPTRACK_CRASH_RUNS (default 50 on SQLite, 25 on PostgreSQL).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use keeptrack::store::Db;

use crate::helpers::{new_database_url, verify_now};

/// Every client by id, and how many clients lack their creation entry or entries their
/// client (read in one pass over the log, which has no index on records: its keys are in
/// `audit_keys`, copied after the entries). The counts come from one statement, so one snapshot: on PostgreSQL a killed
/// process's last COMMIT may still be landing while we look.
async fn state(db: &Db) -> (HashMap<i64, (String, String)>, i64, i64) {
    let clients = "SELECT id, first_name, last_name FROM clients";
    let mismatches = "SELECT \
        (SELECT COUNT(*) FROM clients c LEFT JOIN (SELECT DISTINCT record_id FROM audit_log \
            WHERE record_type = 'client' AND action = 'create') a ON a.record_id = c.id \
            WHERE a.record_id IS NULL), \
        (SELECT COUNT(*) FROM audit_log a WHERE a.record_type = 'client' AND a.action = 'create' \
            AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = a.record_id))";
    type Client = (i64, Option<String>, String);
    let (rows, (orphans, ghosts)): (Vec<Client>, (i64, i64)) = match db {
        Db::Sqlite(p, _) => (
            sqlx::query_as(clients).fetch_all(p).await.unwrap(),
            sqlx::query_as(mismatches).fetch_one(p).await.unwrap(),
        ),
        Db::Postgres(p) => (
            sqlx::query_as(clients).fetch_all(p).await.unwrap(),
            sqlx::query_as(mismatches).fetch_one(p).await.unwrap(),
        ),
    };
    let map = rows
        .into_iter()
        .map(|(id, f, l)| (id, (f.unwrap_or_default(), l)))
        .collect();
    (map, orphans, ghosts)
}

/// Kills per database: a soak of thousands of kills starts a fresh database now and then,
/// so each run's checks (which read every client) stay the same size.
const KILLS_PER_DATABASE: usize = 200;

async fn kill_nine(postgres: bool, default_runs: usize) {
    let runs = std::env::var("KEEPTRACK_CRASH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default_runs);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut acked_total = 0;
    let (mut url, mut _dir) = (String::new(), None);
    for run in 0..runs {
        if run % KILLS_PER_DATABASE == 0 {
            let Some(fresh) = new_database_url(postgres).await else {
                return;
            };
            (url, _dir) = fresh;
            // The schema is made first: a kill during the very first migration, on a
            // loaded machine, would test migrations, not writes.
            Db::open(&url).await.unwrap().close().await;
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_keeptrack"))
            .args(["stress", "--writers", "32", "--writes", "1000000"])
            .env("KEEPTRACK_DATABASE_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(50 + seed % 300)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();

        let db = Db::connect(&url).await.unwrap();
        let (clients, orphans, ghosts) = state(&db).await;
        for ack in &acks {
            let parts: Vec<&str> = ack.split(' ').collect();
            let (w, n, id): (&str, &str, i64) = (parts[1], parts[2], parts[3].parse().unwrap());
            assert_eq!(
                clients.get(&id),
                Some(&(format!("W{w}"), format!("N{n}"))),
                "run {run}: acknowledged client {id} (W{w} N{n}) is missing"
            );
        }
        // Nothing half-written: every client has its creation entry and no entry lacks its client.
        assert_eq!(
            (orphans, ghosts),
            (0, 0),
            "run {run}: clients without entries, entries without clients"
        );
        acked_total += acks.len();
        if run % 10 == 9 || run % KILLS_PER_DATABASE == KILLS_PER_DATABASE - 1 || run == runs - 1 {
            let report = verify_now(&db).await;
            assert!(report.findings.is_empty(), "run {run}: {report:?}");
        }
        db.close().await;
        if run % 100 == 99 {
            let backend = if postgres { "PostgreSQL" } else { "SQLite" };
            eprintln!(
                "{backend}: {} kills, {acked_total} acknowledged writes, none lost",
                run + 1
            );
        }
    }
    assert!(
        acked_total > runs,
        "the writers should get some writes in before each kill"
    );
    eprintln!("{runs} kills, {acked_total} acknowledged writes, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_nothing_acknowledged_sqlite() {
    kill_nine(false, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_loses_nothing_acknowledged_postgres() {
    kill_nine(true, 25).await;
}
