//! Verifiable-log benchmarks (issue 4): what the Merkle tree costs a write, how fast
//! `audit verify` reads a million entries, how long `audit prove` takes among them, and
//! what an entry's canonical bytes cost the writer.
//!
//! Run with `cargo bench --bench log`. Bench 1 runs on SQLite, and on PostgreSQL too when
//! `KEEPTRACK_TEST_DATABASE_URL` names an admin URL (a fresh `kt_bench_*` database is
//! created and dropped); benches 2 and 3 run on SQLite, as the issue asks; bench 4 needs
//! no database.
//!
//! The machine is small, shared and noisy, so every figure is printed next to a baseline
//! measured in the same process run: the ratio is the result. See docs/PERFORMANCE.md.

mod support;

use std::{
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, ensure};
use keeptrack::{
    audit::{
        checkpoint::{Verifier, create_key_files, read_signer},
        proof::prove,
        verify::{Anchors, verify},
    },
    domain::{
        preference::Preference,
        reason::ReasonRule,
        record::{Fields, RecordKind},
    },
    ledger::{Command, Context, Ledger},
    store::{Db, audit_log, log_reader::LogReader},
};
use serde_json::{Value, json};
use support::{
    Rng,
    backfill::{Author, backfill_backdated_entries, settle},
};

/// Every knob is an environment variable; see docs/PERFORMANCE.md.
struct Knobs {
    /// Benchmarks to run: any of 1, 2, 3, 4 (`KT_BENCH_ONLY=2,3`).
    only: Vec<u8>,
    /// Bench 1: timed updates per mode (with and without the tree), in `rounds`.
    writes: usize,
    rounds: usize,
    /// Benches 2 and 3: the log's size.
    entries: usize,
    /// Bench 2: timed runs of verify and of each scan, interleaved.
    verify_runs: usize,
    /// Bench 3: proofs of random entries, and as many primary-key lookups.
    proves: usize,
    seed: u64,
}

fn knob<T: FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow!("{name}={v:?} is not a valid value")),
        Err(_) => Ok(default),
    }
}

impl Knobs {
    fn from_env() -> Result<Self> {
        let only: String = knob("KT_BENCH_ONLY", "1,2,3,4".to_owned())?;
        Ok(Self {
            only: only
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .context("KT_BENCH_ONLY takes numbers: 1,2,3,4")?,
            writes: knob("KT_TREE_WRITES", 2000)?,
            rounds: knob("KT_TREE_ROUNDS", 20)?,
            entries: knob("KT_LOG_ENTRIES", 1_000_000)?,
            verify_runs: knob("KT_VERIFY_RUNS", 3)?,
            proves: knob("KT_PROVES", 2000)?,
            seed: knob("KT_BENCH_SEED", 1)?,
        })
    }
}

/// Milliseconds, sorted.
struct Latencies(Vec<f64>);

impl Latencies {
    fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self(v)
    }
    fn quantile(&self, q: f64) -> f64 {
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0.get(i).copied().unwrap_or(f64::NAN)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

fn fields(v: Value) -> Fields {
    v.as_object().cloned().unwrap_or_default()
}

/// A fresh database: a file in a new temporary directory, or a new PostgreSQL database.
struct Scratch {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Scratch {
    fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        Ok(Self {
            url,
            _dir: Some(dir),
            pg: None,
        })
    }

    async fn postgres(admin: &str, tag: &str) -> Result<Self> {
        let name = format!("kt_bench_{tag}_{}", std::process::id());
        let pool = sqlx::PgPool::connect(admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Ok(Self {
            url: format!("{base}/{name}"),
            _dir: None,
            pg: Some((admin.to_owned(), name)),
        })
    }

    async fn drop_database(&self) -> Result<()> {
        if let Some((admin, name)) = &self.pg {
            let pool = sqlx::PgPool::connect(admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await?;
        }
        Ok(())
    }
}

/// A studio of `users` users and `clients` clients, made through the ledger, with the
/// client_email reason rule dropped (its notes stamps would measure notes, not the log).
async fn studio(ledger: &Ledger, users: usize, clients: usize) -> Result<(Vec<Author>, Vec<i64>)> {
    let policy: Vec<&str> = ReasonRule::ALL
        .iter()
        .filter(|r| **r != ReasonRule::ClientEmail)
        .map(|r| r.as_str())
        .collect();
    let set = Command::SetPreference {
        key: Preference::ReasonsRequired.key().to_owned(),
        value: policy.join(","),
    };
    ledger.submit(Context::system(), set).await?;
    let mut authors = Vec::new();
    for i in 0..users {
        let initials = format!("U{}", char::from(b'A' + (i % 26) as u8));
        let f = fields(json!({
            "username": format!("user{i}"),
            "display_name": format!("Bench User {i}"),
            "initials": initials,
            "security_group": if i == 0 { "owner" } else { "staff" },
        }));
        let out = ledger
            .create_user(Context::system(), f, "a-long-password")
            .await?;
        let id = out.record.map(|r| r.id).context("a user without its id")?;
        authors.push(Author {
            id,
            initials,
            name: format!("Bench User {i}"),
        });
    }
    let mut ids = Vec::new();
    for i in 0..clients {
        let f = fields(json!({"first_name": "Jane", "last_name": format!("Smith {i}")}));
        let create = Command::Create {
            kind: RecordKind::Client,
            fields: f,
        };
        let out = ledger
            .submit(Context::user(authors[i % users].id), create)
            .await?;
        ids.push(
            out.record
                .map(|r| r.id)
                .context("a client without its id")?,
        );
    }
    Ok((authors, ids))
}

// ---------------------------------------------------------------------------------------
// 1. The tree's cost per write
// ---------------------------------------------------------------------------------------

/// One email update by a random user on a random client; its latency in ms.
async fn update(
    ledger: &Ledger,
    users: &[Author],
    clients: &[i64],
    rng: &mut Rng,
    n: u64,
) -> Result<f64> {
    let command = Command::Update {
        kind: RecordKind::Client,
        id: *rng.pick(clients),
        fields: fields(json!({ "email": format!("bench{n}@example.com") })),
        expected_version: None,
    };
    let ctx = Context::user(rng.pick(users).id);
    let t = Instant::now();
    let out = ledger.submit(ctx, command).await?;
    let took = ms(t.elapsed());
    ensure!(
        out.changed && out.audit_index.is_some(),
        "an update left no entry"
    );
    Ok(took)
}

async fn tree_cost(tag: &str, with: &Scratch, without: &Scratch, k: &Knobs) -> Result<()> {
    println!("\n[{tag}] 1. audited write with the tree vs without it (one submitter)");
    let mut modes = Vec::new();
    for (scratch, tree) in [(with, true), (without, false)] {
        let db = Db::open(&scratch.url).await?;
        let ledger = if tree {
            Ledger::start(db).await?
        } else {
            Ledger::start_without_tree(db).await?
        };
        let (users, clients) = studio(&ledger, 20, 300).await?;
        modes.push((ledger, users, clients));
    }
    let mut rng = Rng::new(k.seed);
    let per_round = (k.writes / k.rounds.max(1)).max(1);
    let (mut all, mut round_ratios) = ([Vec::new(), Vec::new()], Vec::new());
    let mut serial = 0u64;
    for round in 0..k.rounds {
        let mut medians = [0.0; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for m in order {
            let (ledger, users, clients) = &modes[m];
            for _ in 0..20 {
                serial += 1;
                update(ledger, users, clients, &mut rng, serial).await?;
            }
            let mut times = Vec::with_capacity(per_round);
            for _ in 0..per_round {
                serial += 1;
                times.push(update(ledger, users, clients, &mut rng, serial).await?);
            }
            all[m].extend(&times);
            medians[m] = Latencies::new(times).quantile(0.5);
        }
        round_ratios.push(medians[0] / medians[1]);
    }
    let [tree, bare] = all.map(Latencies::new);
    let ratio = tree.quantile(0.5) / bare.quantile(0.5);
    let rounds = Latencies::new(round_ratios).quantile(0.5);
    println!(
        "  without the tree: median {:.3} ms, p90 {:.3} ms ({} writes)",
        bare.quantile(0.5),
        bare.quantile(0.9),
        bare.0.len()
    );
    println!(
        "  with the tree:    median {:.3} ms, p90 {:.3} ms ({} writes)",
        tree.quantile(0.5),
        tree.quantile(0.9),
        tree.0.len()
    );
    println!(
        "  with/without (medians): {ratio:.3}x; median of the {} round ratios: {rounds:.3}x",
        k.rounds
    );
    println!("  target <= 1.1x: {}", verdict(ratio <= 1.1));
    for (ledger, ..) in &modes {
        ledger.db().close().await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2 and 3. A log of a million entries: verify, and prove
// ---------------------------------------------------------------------------------------

/// SQLite's own scan of the entries: one statement that reads every body in index order,
/// with nothing handed out but a sum.
async fn select_scan(db: &Db) -> Result<u64> {
    let Db::Sqlite(pool, _) = db else {
        unreachable!()
    };
    let bytes: i64 = sqlx::query_scalar(
        "SELECT sum(length(b)) FROM (SELECT CAST(entry AS BLOB) AS b FROM audit_log ORDER BY idx)",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(bytes)?)
}

/// Reads what verify reads, as verify reads it (pages of 5,000 entries and the tree nodes
/// each page completes, through the same reader), one page at a time, doing nothing with
/// them: the database's share.
async fn raw_scan(db: &Db) -> Result<u64> {
    const PAGE: i64 = 5000;
    let (size, _) = audit_log::head(db).await?;
    let reader = LogReader::new(db);
    let (mut at, mut bytes) = (0i64, 0u64);
    while at < size {
        let (lens, nodes) = reader
            .page(at, size.min(at + PAGE), PAGE, |r| r.bytes.len() as u64)
            .await?;
        bytes += lens.iter().sum::<u64>() + nodes.len() as u64 * 32;
        at += PAGE;
    }
    Ok(bytes)
}

/// The million-entry log, made in `KT_LOG_DIR` if that names a directory without one (and
/// kept there for the next run), else in a temporary directory; and its verifier key.
async fn big_log_db(k: &Knobs) -> Result<(Db, Verifier, Option<tempfile::TempDir>)> {
    let (dir, temp) = match std::env::var("KT_LOG_DIR") {
        Ok(d) => (PathBuf::from(d), None),
        Err(_) => {
            let t = tempfile::tempdir()?;
            (t.path().to_owned(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let (file, key_file) = (dir.join("log.db"), dir.join("log.key"));
    let url = format!("sqlite://{}", file.display());
    if file.exists() && key_file.exists() {
        let db = Db::open(&url).await?;
        println!("\n[sqlite] the log in {} (KT_LOG_DIR)", dir.display());
        return Ok((db, read_signer(&key_file)?.verifier(), temp));
    }
    let db = Db::open(&url).await?;
    let ledger = Ledger::start(db.clone()).await?;
    let (users, clients) = studio(&ledger, 20, 300).await?;
    let labels: Vec<(i64, String)> = clients
        .iter()
        .map(|id| (*id, format!("Jane Smith (client {id})")))
        .collect();
    drop(ledger);
    let mut rng = Rng::new(k.seed);
    let (size, _) = audit_log::head(&db).await?;
    let last = audit_log::rows(&db, size - 1, size, 1).await?;
    let after = last.first().map_or(0, |r| r.ts) + 1;
    let n = k.entries.saturating_sub(usize::try_from(size)? + 2);
    println!(
        "\n[sqlite] a log of {} entries (backfilled straight into its tables)",
        k.entries
    );
    let t = Instant::now();
    backfill_backdated_entries(&db, &users, &labels, n, (after, after + n as i64), &mut rng)
        .await?;
    settle(&db).await?;
    // A checkpoint over all of it, as `serve` would sign, for the proofs.
    let origin = keeptrack::store::preferences::all(&db).await?["log.origin"].clone();
    let signer = create_key_files(&key_file, &origin)?;
    let key = signer.verifier();
    let ledger = Ledger::start_signing(db.clone(), Some(signer)).await?;
    ledger
        .submit(Context::system(), Command::Checkpoint)
        .await?;
    drop(ledger);
    println!("  made in {:.1} s", t.elapsed().as_secs_f64());
    Ok((db, key, temp))
}

async fn big_log(k: &Knobs) -> Result<()> {
    let (db, key, _temp) = big_log_db(k).await?;
    let mut rng = Rng::new(k.seed ^ 0x5eed);
    let (size, _) = audit_log::head(&db).await?;
    let Db::Sqlite(pool, _) = &db else {
        unreachable!()
    };
    let bytes: i64 = sqlx::query_scalar(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    )
    .fetch_one(pool)
    .await?;
    println!("  {size} entries; database file {} MB", bytes / 1_000_000);

    if k.only.contains(&2) {
        println!("\n[sqlite] 2. audit verify of {size} entries vs a raw SELECT scan");
        raw_scan(&db).await?; // warm the page cache for both
        let (mut scan, mut scan_all, mut ver) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..k.verify_runs.max(1) {
            let t = Instant::now();
            select_scan(&db).await?;
            scan.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            raw_scan(&db).await?;
            scan_all.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let report =
                verify(&db, Anchors::default(), keeptrack::clock::now(), |_, _| {}).await?;
            ver.push(t.elapsed().as_secs_f64());
            ensure!(
                report.findings.is_empty(),
                "the backfilled log does not verify: {:?}",
                report.findings
            );
        }
        let med = |v: Vec<f64>| Latencies::new(v).quantile(0.5);
        let (scan, scan_all, ver) = (med(scan), med(scan_all), med(ver));
        let rate = |s: f64| size as f64 / s;
        println!(
            "  SELECT scan of audit_log (SQLite's own): {scan:.3} s ({:.0} entries/s)",
            rate(scan)
        );
        println!(
            "  verify's reads, doing nothing:           {scan_all:.3} s ({:.0} entries/s)",
            rate(scan_all)
        );
        println!(
            "  audit verify:                            {ver:.3} s ({:.0} entries/s)",
            rate(ver)
        );
        println!("  verify / its reads: {:.2}x", ver / scan_all);
        println!(
            "  target <= 2 s at 1,000,000: {}",
            verdict(ver * 1_000_000.0 / size as f64 <= 2.0)
        );
    }

    if k.only.contains(&3) {
        println!("\n[sqlite] 3. audit prove at {size} entries vs a primary-key lookup");
        let Db::Sqlite(pool, _) = &db else {
            unreachable!()
        };
        let (mut proofs, mut lookups) = (Vec::new(), Vec::new());
        for _ in 0..k.proves {
            let i = rng.below(u64::try_from(size)? - 1);
            let t = Instant::now();
            let _: Vec<u8> = sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = $1")
                .bind(i as i64)
                .fetch_one(pool)
                .await?;
            lookups.push(ms(t.elapsed()));
            let t = Instant::now();
            let bundle = prove(&db, i, &key).await?;
            proofs.push(ms(t.elapsed()));
            ensure!(bundle.index == i, "a proof of another entry");
        }
        let (p, l) = (Latencies::new(proofs), Latencies::new(lookups));
        println!(
            "  lookup: median {:.3} ms, p99 {:.3} ms",
            l.quantile(0.5),
            l.quantile(0.99)
        );
        println!(
            "  prove:  median {:.3} ms, p99 {:.3} ms ({} proofs)",
            p.quantile(0.5),
            p.quantile(0.99),
            p.0.len()
        );
        println!(
            "  prove/lookup: median {:.2}x, p99 {:.2}x",
            p.quantile(0.5) / l.quantile(0.5),
            p.quantile(0.99) / l.quantile(0.99)
        );
        println!("  target p99 < 5 ms: {}", verdict(p.quantile(0.99) < 5.0));
    }
    db.close().await;
    Ok(())
}

/// Bench 4: the canonical bytes of a W1 entry (an email changed over HTTP, with its
/// reason and request) as the writer makes them for every audited change, against the
/// RFC 8785 canonicaliser on the same entry, in alternating rounds; each with its leaf
/// hash, as the writer does.
fn entry_bytes() -> Result<()> {
    use keeptrack::domain::{audit::*, diff::Change};
    let entry = Entry {
        act: Action::Update,
        actor: Actor {
            id: Some(7),
            initials: "MKH".into(),
            kind: ActorKind::User,
            name: "Mary K Hill".into(),
        },
        auth: None,
        cat: Category::Clients,
        comm: None,
        diff: vec![Change {
            field: "email".into(),
            new: json!("c4242.w1.124@example.com"),
            old: json!("c4242.w1.123@example.com"),
        }],
        i: 123_456,
        log: "keeptrack.bench/0123456789abcdef".into(),
        note: None,
        reason: Some("bench".into()),
        rec: Some(RecordRef {
            id: 4242,
            label: "Client #4242 Jane Smith".into(),
            kind: "client".into(),
        }),
        req: Some(Request {
            id: Some("0f8e4b0c-1234-4abc-9def-0123456789ab".into()),
            ip: Some("127.0.0.1".into()),
            ua: Some("kt-bench/1".into()),
        }),
        sec: None,
        snap: None,
        ts: 1_764_000_000_000_000,
        v: SCHEMA_VERSION,
    };
    let baseline = serde_json_canonicalizer::to_vec(&entry)?;
    ensure!(
        entry.to_canonical_bytes() == baseline,
        "the writer's bytes differ from RFC 8785's"
    );
    let (n, mut direct, mut general) = (50_000u32, Duration::ZERO, Duration::ZERO);
    let mut sink = 0u8;
    for _ in 0..10 {
        let t = Instant::now();
        for _ in 0..n {
            sink ^= leaf_hash(&entry.to_canonical_bytes())[0];
        }
        direct += t.elapsed();
        let t = Instant::now();
        for _ in 0..n {
            sink ^= leaf_hash(&serde_json_canonicalizer::to_vec(&entry)?)[0];
        }
        general += t.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(n * 10);
    println!(
        "\n[entry bytes] a W1 entry with its leaf hash: as the writer makes it {:.0} ns, \
         the RFC 8785 canonicaliser {:.0} ns: {:.1}× faster ({sink:02x})",
        per(direct),
        per(general),
        general.as_secs_f64() / direct.as_secs_f64()
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let k = Knobs::from_env()?;
    let started = Instant::now();
    if k.only.contains(&1) {
        tree_cost("sqlite", &Scratch::sqlite()?, &Scratch::sqlite()?, &k).await?;
        if let Ok(admin) = std::env::var("KEEPTRACK_TEST_DATABASE_URL") {
            let (a, b) = (
                Scratch::postgres(&admin, "tree").await?,
                Scratch::postgres(&admin, "notree").await?,
            );
            let result = tree_cost("postgres", &a, &b, &k).await;
            a.drop_database().await?;
            b.drop_database().await?;
            result?;
        }
    }
    if k.only.contains(&2) || k.only.contains(&3) {
        big_log(&k).await?;
    }
    if k.only.contains(&4) {
        entry_bytes()?;
    }
    println!("\nwall time: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
