//! Ledger benchmarks: what auditing costs a write, what group commit buys, and how fast the
//! log answers a query once it is large.
//!
//! Run with `cargo bench --bench ledger`. SQLite always runs (in a fresh directory under
//! `std::env::temp_dir()`); PostgreSQL runs too when `KEEPTRACK_TEST_DATABASE_URL` names
//! an admin URL (a fresh `kt_bench_*` database is created and dropped).
//!
//! The machine this is meant for is small, shared and noisy, so no figure stands alone:
//! every one is printed next to a baseline measured in the same process run, and the ratio
//! is the result. See docs/PERFORMANCE.md for what each part measures and the knobs.

use std::{
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use jiff::{SignedDuration, Timestamp};
use keeptrack::{
    audit::{self, Query},
    domain::{
        audit::Category,
        preference::Preference,
        reason::ReasonRule,
        record::{Fields, RecordKind},
    },
    ledger::{Command, Context, Ledger},
    store::{Db, audit_log},
};
use serde_json::{Value, json};
use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::task::JoinSet;

mod support;

use support::{
    Rng,
    backfill::{Author, backfill_backdated_entries, settle},
};

// ---------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------

/// Every knob is an environment variable; the defaults keep the SQLite run to a few
/// minutes on a 2-core machine.
#[derive(Clone, Debug)]
struct Knobs {
    /// Benchmarks to run: any of 1, 2, 3 (`KT_BENCH_ONLY=1,3`).
    only: Vec<u8>,
    /// `sqlite`, `postgres` or `both` (postgres needs `KEEPTRACK_TEST_DATABASE_URL`).
    backends: String,
    seed: u64,
    /// Users the writes are spread over (actors of the audit entries).
    users: usize,
    /// Clients the updates pick from.
    clients: usize,
    /// Bench 1: timed updates per mode (audited and bare), split over `rounds`.
    updates: usize,
    rounds: usize,
    /// Bench 2: submitter counts, writes per level per round, rounds, limit writes.
    submitters: Vec<usize>,
    group_writes: usize,
    group_rounds: usize,
    limit_writes: usize,
    /// Bench 3: log size to fill to, how (`backfill`: backdated entries over a year,
    /// written straight into the log's tables; `ledger`: audited updates now, from
    /// `fill_tasks` submitters), and timed queries.
    entries: usize,
    fill: String,
    fill_tasks: usize,
    queries: usize,
}

fn knob<T: FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| anyhow!("{name}={v} is not a valid value")),
        Err(_) => Ok(default),
    }
}

fn list_knob<T: FromStr>(name: &str, default: &str) -> Result<Vec<T>> {
    let raw = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    raw.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| anyhow!("{name}={raw} is not a comma-separated list"))
        })
        .collect()
}

impl Knobs {
    fn from_env() -> Result<Self> {
        let k = Self {
            only: list_knob("KT_BENCH_ONLY", "1,2,3")?,
            backends: knob("KT_BENCH_BACKENDS", "both".to_owned())?,
            seed: knob("KT_BENCH_SEED", 0x006b_7462_656e_6368_u64)?,
            users: knob("KT_BENCH_USERS", 20)?,
            clients: knob("KT_BENCH_CLIENTS", 300)?,
            updates: knob("KT_BENCH_UPDATES", 2000)?,
            rounds: knob("KT_BENCH_ROUNDS", 20)?,
            submitters: list_knob("KT_BENCH_SUBMITTERS", "1,8,64")?,
            group_writes: knob("KT_BENCH_GROUP_WRITES", 1024)?,
            group_rounds: knob("KT_BENCH_GROUP_ROUNDS", 5)?,
            limit_writes: knob("KT_BENCH_LIMIT_WRITES", 500)?,
            entries: knob("KT_BENCH_ENTRIES", 1_000_000)?,
            fill: knob("KT_BENCH_FILL", "backfill".to_owned())?,
            fill_tasks: knob("KT_BENCH_FILL_TASKS", 256)?,
            queries: knob("KT_BENCH_QUERIES", 1000)?,
        };
        ensure!(
            k.users >= 1 && k.clients >= 1,
            "need at least one user and client"
        );
        ensure!(
            k.rounds >= 1 && k.group_rounds >= 1,
            "need at least one round"
        );
        ensure!(
            k.submitters.iter().all(|&n| n >= 1),
            "submitter counts must be positive"
        );
        ensure!(
            ["backfill", "ledger"].contains(&k.fill.as_str()),
            "KT_BENCH_FILL is backfill or ledger"
        );
        Ok(k)
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers: a seeded generator and statistics
// ---------------------------------------------------------------------------------------

/// Latencies in milliseconds, sorted once.
struct Stats {
    ms: Vec<f64>,
}

impl Stats {
    fn new(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Self { ms }
    }
    /// Nearest-rank percentile, `p` in (0, 1].
    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let rank = (p * self.ms.len() as f64).ceil() as usize;
        self.ms[rank.clamp(1, self.ms.len()) - 1]
    }
    fn median(&self) -> f64 {
        self.pct(0.5)
    }
    fn mean(&self) -> f64 {
        self.ms.iter().sum::<f64>() / self.ms.len() as f64
    }
}

fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[(v.len() - 1) / 2]
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

fn fields(v: Value) -> Fields {
    v.as_object().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// A studio to measure: database, ledger, users and clients
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

struct Studio {
    backend: Backend,
    ledger: Ledger,
    users: Arc<Vec<i64>>,
    clients: Arc<Vec<i64>>,
    /// Makes every new email different from the last, so every update changes something.
    serial: Arc<AtomicU64>,
}

/// Where the "database's own limit" of bench 2 is measured: same durability as the
/// ledger's database, one single-row transaction at a time, on one connection.
enum LimitDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Studio {
    async fn open(backend: Backend, url: &str, knobs: &Knobs) -> Result<Self> {
        let db = Db::open(url).await.context("open the database")?;
        let ledger = Ledger::start(db).await.context("start the ledger")?;
        // By default an email change needs a reason, and the reason is stamped into the
        // client's notes as a new revision holding the whole text so far: with 200,000
        // updates over 300 clients that grows quadratically and measures notes, not the
        // audited write. The studio may drop that rule; the benchmark does.
        let policy: Vec<&str> = ReasonRule::ALL
            .iter()
            .filter(|r| **r != ReasonRule::ClientEmail)
            .map(|r| r.as_str())
            .collect();
        ledger
            .submit(
                Context::system(),
                Command::SetPreference {
                    key: Preference::ReasonsRequired.key().to_owned(),
                    value: policy.join(","),
                },
            )
            .await
            .context("drop the client_email reason rule")?;
        let mut users = Vec::with_capacity(knobs.users);
        for i in 0..knobs.users {
            let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
            let initials = format!("U{}{}", letter(i / 26), letter(i));
            let group = if i == 0 { "owner" } else { "staff" };
            let f = fields(json!({
                "username": format!("user{i}"),
                "display_name": format!("Bench User {i}"),
                "initials": initials,
                "security_group": group,
            }));
            let out = ledger
                .create_user(Context::system(), f, "a-long-password")
                .await
                .with_context(|| format!("create user {i}"))?;
            users.push(record_id(&out)?);
        }
        let users = Arc::new(users);
        let clients = create_clients(&ledger, &users, knobs.clients).await?;
        Ok(Self {
            backend,
            ledger,
            users,
            clients: Arc::new(clients),
            serial: Arc::new(AtomicU64::new(0)),
        })
    }

    fn db(&self) -> &Db {
        self.ledger.db()
    }

    async fn set_clients_logging(&self, enabled: bool) -> Result<()> {
        self.ledger
            .submit(
                Context::system(),
                Command::SetAuditLogging {
                    category: Category::Clients,
                    enabled,
                },
            )
            .await
            .context("switch client auditing")?;
        Ok(())
    }
}

fn record_id(out: &keeptrack::ledger::Outcome) -> Result<i64> {
    out.record
        .as_ref()
        .map(|r| r.id)
        .ok_or_else(|| anyhow!("a create answered without its record"))
}

async fn create_clients(ledger: &Ledger, users: &Arc<Vec<i64>>, n: usize) -> Result<Vec<i64>> {
    const TASKS: usize = 16;
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        let (ledger, users, next) = (ledger.clone(), users.clone(), next.clone());
        set.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let f = fields(json!({
                    "first_name": "Jane",
                    "last_name": format!("Smith {i}"),
                    "email": format!("client{i}@example.com"),
                }));
                let command = Command::Create {
                    kind: RecordKind::Client,
                    fields: f,
                };
                let out = ledger
                    .submit(Context::user(users[i % users.len()]), command)
                    .await
                    .with_context(|| format!("create client {i}"))?;
                ids.push(record_id(&out)?);
            }
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        ids.extend(done??);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// One update of a random client's email by a random user; returns whether it was
/// logged. Every call changes the email, so every call writes.
async fn update_email(
    ledger: &Ledger,
    users: &[i64],
    clients: &[i64],
    serial: &AtomicU64,
    rng: &mut Rng,
) -> Result<bool> {
    let id = *rng.pick(clients);
    let user = *rng.pick(users);
    let n = serial.fetch_add(1, Ordering::Relaxed);
    let command = Command::Update {
        kind: RecordKind::Client,
        id,
        fields: fields(json!({ "email": format!("c{id}.{n}@example.com") })),
        expected_version: None,
    };
    let out = ledger
        .submit(Context::user(user), command)
        .await
        .with_context(|| format!("update client {id}"))?;
    ensure!(out.changed, "an update of client {id} changed nothing");
    Ok(out.audit_index.is_some())
}

// ---------------------------------------------------------------------------------------
// 1. Audited vs bare update
// ---------------------------------------------------------------------------------------

async fn bench_audit_overhead(s: &Studio, k: &Knobs, rng: &mut Rng) -> Result<Summary> {
    let tag = s.backend.name();
    let per_round = (k.updates / k.rounds).max(1);
    println!(
        "[{tag}] 1. audited vs bare update: {} clients, {per_round} sequential updates per \
         mode per round, {} rounds (ON/OFF order alternates)",
        s.clients.len(),
        k.rounds
    );
    let mut audited = Vec::with_capacity(per_round * k.rounds);
    let mut bare = Vec::with_capacity(per_round * k.rounds);
    let mut round_ratios = Vec::with_capacity(k.rounds);
    for round in 0..k.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut medians = [0.0; 2];
        for on in order {
            s.set_clients_logging(on).await?;
            // A few untimed writes settle the switch and warm the statements.
            for _ in 0..20 {
                update_email(&s.ledger, &s.users, &s.clients, &s.serial, rng).await?;
            }
            let mut samples = Vec::with_capacity(per_round);
            for _ in 0..per_round {
                let t = Instant::now();
                let logged = update_email(&s.ledger, &s.users, &s.clients, &s.serial, rng).await?;
                samples.push(t.elapsed());
                ensure!(logged == on, "auditing was {on} but logged was {logged}");
            }
            medians[usize::from(!on)] = Stats::new(&samples).median();
            if on {
                audited.extend(samples);
            } else {
                bare.extend(samples);
            }
        }
        round_ratios.push(medians[0] / medians[1]);
    }
    s.set_clients_logging(true).await?;
    let (a, b) = (Stats::new(&audited), Stats::new(&bare));
    let ratio = a.median() / b.median();
    println!(
        "[{tag}]    bare    (Clients auditing OFF): median {:.3} ms/write, mean {:.3}, p90 {:.3}",
        b.median(),
        b.mean(),
        b.pct(0.9)
    );
    println!(
        "[{tag}]    audited (Clients auditing ON):  median {:.3} ms/write, mean {:.3}, p90 {:.3}",
        a.median(),
        a.mean(),
        a.pct(0.9)
    );
    let rounds: Vec<String> = round_ratios.iter().map(|r| format!("{r:.2}")).collect();
    let round_median = median_of(&round_ratios);
    println!(
        "[{tag}]    ratio audited/bare (medians): {ratio:.2}x  (target <= 1.3x: {})",
        verdict(ratio <= 1.3)
    );
    println!(
        "[{tag}]    per-round ratios: {}  (median {round_median:.2}x)",
        rounds.join(" ")
    );
    Ok(Summary {
        line: format!(
            "1. audited/bare update median: {:.3} / {:.3} ms = {ratio:.2}x, median of \
             per-round ratios {round_median:.2}x (target <= 1.3x: {})",
            a.median(),
            b.median(),
            verdict(ratio <= 1.3)
        ),
    })
}

// ---------------------------------------------------------------------------------------
// 2. Group commit
// ---------------------------------------------------------------------------------------

impl LimitDb {
    async fn open(backend: Backend, dir: &std::path::Path, pg_url: Option<&str>) -> Result<Self> {
        match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::new()
                    .filename(dir.join("limit.db"))
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?;
                sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
                    .execute(&pool)
                    .await?;
                Ok(Self::Sqlite(pool))
            }
            Backend::Postgres => {
                let url = pg_url.ok_or_else(|| anyhow!("no PostgreSQL URL"))?;
                let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
                sqlx::query(
                    "CREATE TABLE bench_limit (id BIGSERIAL PRIMARY KEY, v BIGINT NOT NULL)",
                )
                .execute(&pool)
                .await?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Commits `n` one-row transactions one after another; returns writes per second.
    async fn run(&self, n: usize) -> Result<f64> {
        let start = Instant::now();
        for i in 0..n as i64 {
            match self {
                Self::Sqlite(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query("INSERT INTO t (v) VALUES (?)")
                        .bind(i)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                Self::Postgres(pool) => {
                    // Autocommit: the INSERT is its own transaction.
                    sqlx::query("INSERT INTO bench_limit (v) VALUES ($1)")
                        .bind(i)
                        .execute(pool)
                        .await?;
                }
            }
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    /// The same `n` inserts in a single transaction: what a write costs without its own
    /// commit, so that `1/limit - 1/batched` is what one commit (its fsync) costs.
    async fn run_batched(&self, n: usize) -> Result<f64> {
        let start = Instant::now();
        match self {
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for i in 0..n as i64 {
                    sqlx::query("INSERT INTO t (v) VALUES (?)")
                        .bind(i)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for i in 0..n as i64 {
                    sqlx::query("INSERT INTO bench_limit (v) VALUES ($1)")
                        .bind(i)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// `tasks` submitters share `total` audited updates; returns writes per second.
async fn audited_throughput(s: &Studio, tasks: usize, total: usize, seed: u64) -> Result<f64> {
    let per_task = (total / tasks).max(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let ledger = s.ledger.clone();
        let (users, clients, serial) = (s.users.clone(), s.clients.clone(), s.serial.clone());
        let barrier = barrier.clone();
        let mut rng = Rng::new(seed ^ (t as u64).wrapping_mul(0x9e37_79b9));
        set.spawn(async move {
            barrier.wait().await;
            for _ in 0..per_task {
                let logged = update_email(&ledger, &users, &clients, &serial, &mut rng).await?;
                ensure!(logged, "a group-commit write was not audited");
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok((per_task * tasks) as f64 / start.elapsed().as_secs_f64())
}

async fn bench_group_commit(
    s: &Studio,
    k: &Knobs,
    limit: &LimitDb,
    rng: &mut Rng,
) -> Result<Summary> {
    let tag = s.backend.name();
    let limit_desc = match s.backend {
        Backend::Sqlite => "separate SQLite file, WAL + synchronous=FULL, BEGIN/INSERT/COMMIT",
        Backend::Postgres => "separate table, same database, autocommit single-row INSERT",
    };
    println!(
        "[{tag}] 2. group commit: audited updates/s vs the database's one-at-a-time limit \
         ({limit_desc}); {} writes per level, {} rounds, each level paired with a {}-commit \
         limit run just before it; medians over rounds",
        k.group_writes, k.group_rounds, k.limit_writes
    );
    // Each level's run is paired with a limit run just before it, so that a ratio compares
    // two measurements a second or two apart, not a whole round apart.
    let mut limits = Vec::with_capacity(k.group_rounds * k.submitters.len());
    let mut levels: Vec<Vec<f64>> = vec![Vec::new(); k.submitters.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); k.submitters.len()];
    let mut batched = Vec::with_capacity(k.group_rounds);
    // Commands per committed transaction at each level: what group commit actually got.
    let mut per_batch: Vec<(u64, u64)> = vec![(0, 0); k.submitters.len()];
    for _ in 0..k.group_rounds {
        batched.push(limit.run_batched(k.limit_writes).await?);
        for (i, &n) in k.submitters.iter().enumerate() {
            let lim = limit.run(k.limit_writes).await?;
            let (b0, c0) = s.ledger.batch_stats();
            let w = audited_throughput(s, n, k.group_writes, rng.next_u64()).await?;
            let (b1, c1) = s.ledger.batch_stats();
            per_batch[i].0 += b1 - b0;
            per_batch[i].1 += c1 - c0;
            limits.push(lim);
            levels[i].push(w);
            ratios[i].push(w / lim);
        }
    }
    let lim = median_of(&limits);
    let (lo, hi) = limits
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "[{tag}]    limit: {lim:.0} commits/s (median of {} runs, range {lo:.0}..{hi:.0})",
        limits.len()
    );
    let unbatched_ms = 1e3 / lim;
    let insert_ms = 1e3 / median_of(&batched);
    println!(
        "[{tag}]    of the limit's {unbatched_ms:.3} ms per write, the commit (fsync) is about \
         {:.3} ms: the same inserts in one transaction take {insert_ms:.3} ms each",
        unbatched_ms - insert_ms
    );
    let mut summary = Vec::new();
    for (i, &n) in k.submitters.iter().enumerate() {
        let w = median_of(&levels[i]);
        let r = median_of(&ratios[i]);
        let target = if n == 64 && s.backend == Backend::Sqlite {
            format!("  (target >= 5x: {})", verdict(r >= 5.0))
        } else {
            String::new()
        };
        let each: Vec<String> = ratios[i].iter().map(|r| format!("{r:.2}")).collect();
        let (batches, commands) = per_batch[i];
        println!(
            "[{tag}]    {n:>3} submitter(s): {w:>7.0} audited writes/s = {r:.2}x the limit \
             [rounds: {}], {:.1} commands per commit{target}",
            each.join(" "),
            commands as f64 / batches.max(1) as f64
        );
        summary.push(format!("{n}: {w:.0}/s = {r:.2}x"));
    }
    Ok(Summary {
        line: format!(
            "2. audited writes/s vs limit {lim:.0}/s: {}",
            summary.join(", ")
        ),
    })
}

// ---------------------------------------------------------------------------------------
// 3. Audit query at scale
// ---------------------------------------------------------------------------------------

/// Fills the log to `target` entries with audited updates from `tasks` submitters.
async fn fill_log(s: &Studio, target: usize, tasks: usize, seed: u64) -> Result<()> {
    let tag = s.backend.name();
    let have = usize::try_from(audit_log::size(s.db()).await?)?;
    if have >= target {
        println!("[{tag}]    log already holds {have} entries");
        return Ok(());
    }
    let missing = target - have;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let ledger = s.ledger.clone();
        let (users, clients, serial) = (s.users.clone(), s.clients.clone(), s.serial.clone());
        let next = next.clone();
        let mut rng = Rng::new(seed ^ (t as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < missing {
                update_email(&ledger, &users, &clients, &serial, &mut rng).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    let progress = {
        let next = next.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let done = next.load(Ordering::Relaxed).min(missing);
                if done == missing {
                    break;
                }
                if done != last {
                    eprintln!("[{tag}]    ... filled {done} of {missing}");
                    last = done;
                }
            }
        })
    };
    while let Some(done) = set.join_next().await {
        done??;
    }
    progress.abort();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "[{tag}]    filled {missing} entries in {secs:.1} s ({:.0} audited writes/s, {tasks} \
         submitters)",
        missing as f64 / secs
    );
    Ok(())
}

/// Fills the log to `target` entries with backdated client changes by the studio's users,
/// spread evenly over the year before now (see `backfill_backdated_entries`), then
/// settles what the bulk write left behind as a year of slow growth would have.
async fn backfill_log(s: &Studio, target: usize, seed: u64) -> Result<()> {
    let tag = s.backend.name();
    let have = usize::try_from(audit_log::size(s.db()).await?)?;
    if have >= target {
        println!("[{tag}]    log already holds {have} entries");
        return Ok(());
    }
    // The users and clients as `Studio::open` made them.
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    let authors: Vec<Author> = (s.users.iter().enumerate())
        .map(|(i, id)| Author {
            id: *id,
            initials: format!("U{}{}", letter(i / 26), letter(i)),
            name: format!("Bench User {i}"),
        })
        .collect();
    let clients: Vec<(i64, String)> = (s.clients.iter().enumerate())
        .map(|(i, id)| (*id, format!("Jane Smith {i} (client {id})")))
        .collect();
    let now = keeptrack::clock::now().as_microsecond();
    let day = 86_400_000_000;
    let span = (now - 60_000_000 - 365 * day, now - 60_000_000);
    let t = Instant::now();
    let mut rng = Rng::new(seed);
    backfill_backdated_entries(s.db(), &authors, &clients, target - have, span, &mut rng).await?;
    settle(s.db())
        .await
        .context("settle the database after the backfill")?;
    println!(
        "[{tag}]    backfilled {} backdated entries over 365 days in {:.1} s (bench-only \
         path, see backfill_backdated_entries)",
        target - have,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The raw pool under the ledger's `Db`: the baseline query runs through the same pool
/// (same connections, same acquire) as `audit::list`, just with trivial SQL.
async fn pk_lookup(db: &Db, idx: i64) -> Result<usize> {
    let entry: Vec<u8> = match db {
        Db::Sqlite(p, _) => {
            sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = ?")
                .bind(idx)
                .fetch_one(p)
                .await?
        }
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = $1")
                .bind(idx)
                .fetch_one(p)
                .await?
        }
    };
    Ok(entry.len())
}

async fn ts_range(db: &Db) -> Result<(i64, i64)> {
    let sql = "SELECT MIN(ts), MAX(ts) FROM audit_log";
    let (lo, hi): (Option<i64>, Option<i64>) = match db {
        Db::Sqlite(p, _) => sqlx::query_as(sql).fetch_one(p).await?,
        Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await?,
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) => Ok((lo, hi)),
        _ => bail!("the audit log is empty"),
    }
}

async fn bench_audit_query(s: &Studio, k: &Knobs, rng: &mut Rng) -> Result<Summary> {
    let tag = s.backend.name();
    println!(
        "[{tag}] 3. audit query at scale: fill to {} entries, then {} queries (random actor of \
         {}, random 7-day window, first page of 50) interleaved with as many PK lookups",
        k.entries,
        k.queries,
        s.users.len()
    );
    if k.fill == "backfill" {
        backfill_log(s, k.entries, rng.next_u64()).await?;
    } else {
        fill_log(s, k.entries, k.fill_tasks, rng.next_u64()).await?;
    }
    let size = audit_log::size(s.db()).await?;
    let (lo, hi) = ts_range(s.db()).await?;
    let week = SignedDuration::from_hours(24 * 7);
    println!(
        "[{tag}]    log: {size} entries timed over {:.1} days; each window ends at a random \
         instant inside that span and starts 7 days earlier",
        (hi - lo) as f64 / 86_400e6
    );
    let query_for = |rng: &mut Rng| -> Result<Query> {
        let to_us = lo + 1 + rng.below((hi - lo + 1) as u64) as i64;
        let to = Timestamp::from_microsecond(to_us)?;
        Ok(Query {
            actor_id: Some(*rng.pick(&s.users)),
            from: Some(to.checked_sub(week)?),
            to: Some(to),
            limit: 50,
            ..Default::default()
        })
    };
    // Warm both paths (statement caches, pages) before timing.
    for _ in 0..50 {
        audit::list(s.db(), &query_for(rng)?).await?;
        pk_lookup(s.db(), rng.below(size as u64) as i64).await?;
    }
    let mut q_lat = Vec::with_capacity(k.queries);
    let mut b_lat = Vec::with_capacity(k.queries);
    let (mut rows, mut full) = (0usize, 0usize);
    for i in 0..k.queries {
        let q = query_for(rng)?;
        let idx = rng.below(size as u64) as i64;
        // Alternate which goes first so neither always follows the other.
        let (page, qd, bd) = if i % 2 == 0 {
            let t = Instant::now();
            let page = audit::list(s.db(), &q).await?;
            let qd = t.elapsed();
            let t = Instant::now();
            pk_lookup(s.db(), idx).await?;
            (page, qd, t.elapsed())
        } else {
            let t = Instant::now();
            pk_lookup(s.db(), idx).await?;
            let bd = t.elapsed();
            let t = Instant::now();
            let page = audit::list(s.db(), &q).await?;
            (page, t.elapsed(), bd)
        };
        rows += page.entries.len();
        full += usize::from(page.entries.len() == 50);
        q_lat.push(qd);
        b_lat.push(bd);
    }
    let (q, b) = (Stats::new(&q_lat), Stats::new(&b_lat));
    println!(
        "[{tag}]    pages: {:.1} entries on average, {full} of {} full (50)",
        rows as f64 / k.queries as f64,
        k.queries
    );
    println!(
        "[{tag}]    baseline PK lookup (audit_log WHERE idx = ?): median {:.3} ms, p99 {:.3} ms",
        b.median(),
        b.pct(0.99)
    );
    println!(
        "[{tag}]    audit query (actor + window, 50/page):      median {:.3} ms, p99 {:.3} ms",
        q.median(),
        q.pct(0.99)
    );
    println!(
        "[{tag}]    ratio query/baseline: median {:.2}x, p99 {:.2}x  (target p99 < 5 ms: {})",
        q.median() / b.median(),
        q.pct(0.99) / b.pct(0.99),
        verdict(q.pct(0.99) < 5.0)
    );
    Ok(Summary {
        line: format!(
            "3. audit query at {size} entries: median {:.3} ms, p99 {:.3} ms; PK lookup median \
             {:.3} ms, p99 {:.3} ms; ratio {:.2}x / {:.2}x (target p99 < 5 ms: {})",
            q.median(),
            q.pct(0.99),
            b.median(),
            b.pct(0.99),
            q.median() / b.median(),
            q.pct(0.99) / b.pct(0.99),
            verdict(q.pct(0.99) < 5.0)
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Running one backend
// ---------------------------------------------------------------------------------------

struct Summary {
    line: String,
}

async fn run_backend(
    backend: Backend,
    url: &str,
    dir: &std::path::Path,
    knobs: &Knobs,
) -> Result<Vec<Summary>> {
    let tag = backend.name();
    let t = Instant::now();
    let studio = Studio::open(backend, url, knobs).await?;
    println!(
        "[{tag}] set up {} users and {} clients in {:.1} s",
        studio.users.len(),
        studio.clients.len(),
        t.elapsed().as_secs_f64()
    );
    let mut rng = Rng::new(knobs.seed);
    let mut out = Vec::new();
    if knobs.only.contains(&1) {
        out.push(bench_audit_overhead(&studio, knobs, &mut rng).await?);
    }
    if knobs.only.contains(&2) {
        let limit = LimitDb::open(backend, dir, Some(url)).await?;
        let r = bench_group_commit(&studio, knobs, &limit, &mut rng).await;
        limit.close().await;
        out.push(r?);
    }
    if knobs.only.contains(&3) {
        out.push(bench_audit_query(&studio, knobs, &mut rng).await?);
    }
    studio.db().close().await;
    println!("[{tag}] done in {:.1} s", t.elapsed().as_secs_f64());
    Ok(out)
}

fn unique_suffix() -> String {
    let micros = keeptrack::clock::now().as_microsecond();
    format!(
        "{}_{}",
        std::process::id(),
        micros.rem_euclid(1_000_000_000)
    )
}

async fn run_sqlite(knobs: &Knobs) -> Result<Vec<Summary>> {
    let dir: PathBuf = std::env::temp_dir().join(format!("kt_bench_{}", unique_suffix()));
    std::fs::create_dir_all(&dir)?;
    println!("[sqlite] files in {}", dir.display());
    let url = format!("sqlite://{}", dir.join("keeptrack.db").display());
    let result = run_backend(Backend::Sqlite, &url, &dir, knobs).await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("[sqlite] could not remove {}: {e}", dir.display());
    }
    result
}

async fn run_postgres(admin_url: &str, knobs: &Knobs) -> Result<Vec<Summary>> {
    let name = format!("kt_bench_{}", unique_suffix());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .context("reach KEEPTRACK_TEST_DATABASE_URL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let base = admin_url
        .split_once('?')
        .map_or(admin_url, |(b, _)| b)
        .rsplit_once('/')
        .map_or(admin_url, |(b, _)| b);
    let url = format!("{base}/{name}");
    println!("[postgres] database {name}");
    let result = run_backend(Backend::Postgres, &url, &std::env::temp_dir(), knobs).await;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await;
    if let Err(e) = dropped {
        eprintln!("[postgres] could not drop {name}: {e}");
    }
    admin.close().await;
    result
}

fn main() -> Result<()> {
    let knobs = Knobs::from_env()?;
    // Like the server: a multi-threaded runtime, one worker per core of this 2-core box.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        println!("keeptrack ledger benchmarks; knobs: {knobs:?}");
        let mut summaries = Vec::new();
        if matches!(knobs.backends.as_str(), "sqlite" | "both") {
            summaries.push(("sqlite", run_sqlite(&knobs).await?));
        }
        if matches!(knobs.backends.as_str(), "postgres" | "both") {
            match std::env::var("KEEPTRACK_TEST_DATABASE_URL") {
                Ok(admin) => summaries.push(("postgres", run_postgres(&admin, &knobs).await?)),
                Err(_) => println!("[postgres] skipped: KEEPTRACK_TEST_DATABASE_URL is not set"),
            }
        }
        println!();
        println!(
            "summary ({:.0} s in all; ratios are against baselines from this same run):",
            started.elapsed().as_secs_f64()
        );
        for (tag, lines) in &summaries {
            for s in lines {
                println!("[{tag}] {}", s.line);
            }
        }
        Ok(())
    })
}
