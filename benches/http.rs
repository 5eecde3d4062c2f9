//! HTTP benchmarks (issue 5): four workloads (W2 both as one append and as a GET+PUT save)
//! through the real server over real sockets, next to the database's own limit for the
//! same statements and the peer stack's figures.
//!
//! Run with `cargo bench --bench http`. SQLite always runs (in a fresh directory under
//! `std::env::temp_dir()`); PostgreSQL runs too when `KEEPTRACK_TEST_DATABASE_URL` names
//! an admin URL (a fresh `kt_bench_*` database is created and dropped).
//!
//! - The server is `keeptrack::web::serve` on 127.0.0.1, in this process, on a tokio
//!   runtime of its own (2 workers, like the binary on this 2-core machine), with the
//!   production tracing filter writing to a sink, so every request is still formatted.
//! - The load generator is a minimal HTTP/1.1 keep-alive client over `TcpStream`, on one
//!   thread with a current-thread runtime: N connections, each a closed loop of requests.
//!   Its own CPU time is read from `/proc/thread-self/schedstat`, so it can be reported.
//! - Setup: users and clients through the ledger, then (bench only) a backfill of
//!   backdated audit entries appended straight into the log's tables, so that the log
//!   spans a year; see `backfill_backdated_entries`.
//!
//! The machine this is meant for is small, shared and noisy: every figure is printed next
//! to a baseline from the same run. See docs/PERFORMANCE.md for what each part measures.

use std::{
    collections::HashMap,
    net::SocketAddr,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use jiff::Timestamp;
use keeptrack::{
    domain::record::{Fields, RecordKind},
    ledger::{Command, Context, Ledger},
    store::{Db, audit_log},
    web,
};
use serde_json::{Value, json};
use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

mod support;

use support::{
    Rng,
    backfill::{Author, backfill_backdated_entries, settle},
};

const PASSWORD: &str = "a-long-bench-password";
const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

// ---------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------

/// Every knob is an environment variable; see docs/PERFORMANCE.md.
#[derive(Clone, Debug)]
struct Knobs {
    /// `sqlite`, `postgres` or `both` (postgres needs `KEEPTRACK_TEST_DATABASE_URL`).
    backends: String,
    seed: u64,
    users: usize,
    clients: usize,
    /// Backdated audit entries appended at setup, spread over the year before it.
    entries: usize,
    /// Workloads to run (1 to 4) and connection counts for each.
    workloads: Vec<u8>,
    connections: Vec<usize>,
    /// Timed seconds per workload and connection count, after `warmup` untimed seconds.
    seconds: f64,
    warmup: f64,
    /// W3's page size (`?limit=`).
    history_limit: i64,
    /// W1 audit on vs off: connection counts (empty to skip), rounds, timed seconds per
    /// mode per round.
    audit_connections: Vec<usize>,
    audit_rounds: usize,
    audit_seconds: f64,
    /// The database's own limit: one-at-a-time writes and reads per measurement.
    limit_writes: usize,
    limit_reads: usize,
    /// Worker threads of the server's runtime.
    server_threads: usize,
    /// PostgreSQL connections pooled for reads, as the binary's `--database-pool`.
    read_connections: u32,
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
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow!("{name}={raw} is not a comma-separated list"))
        })
        .collect()
}

impl Knobs {
    fn from_env() -> Result<Self> {
        let k = Self {
            backends: knob("KT_BENCH_BACKENDS", "both".to_owned())?,
            seed: knob("KT_BENCH_SEED", 0x006b_7468_7474_7062_u64)?,
            users: knob("KT_BENCH_USERS", 20)?,
            clients: knob("KT_BENCH_CLIENTS", 10_000)?,
            entries: knob("KT_BENCH_ENTRIES", 1_000_000)?,
            workloads: list_knob("KT_BENCH_WORKLOADS", "1,2,3,4,5")?,
            connections: list_knob("KT_BENCH_CONNECTIONS", "8,64")?,
            seconds: knob("KT_BENCH_SECONDS", 10.0)?,
            warmup: knob("KT_BENCH_WARMUP", 2.0)?,
            history_limit: knob("KT_BENCH_HISTORY_LIMIT", 20)?,
            audit_connections: list_knob("KT_BENCH_AUDIT_CONNECTIONS", "8,64")?,
            audit_rounds: knob("KT_BENCH_AUDIT_ROUNDS", 6)?,
            audit_seconds: knob("KT_BENCH_AUDIT_SECONDS", 3.0)?,
            limit_writes: knob("KT_BENCH_LIMIT_WRITES", 500)?,
            limit_reads: knob("KT_BENCH_LIMIT_READS", 2000)?,
            server_threads: knob("KT_BENCH_SERVER_THREADS", 2)?,
            read_connections: knob(
                "KEEPTRACK_DATABASE_POOL",
                keeptrack::store::default_read_connections(),
            )?,
        };
        ensure!(
            k.users >= 1 && k.clients >= 1,
            "need at least one user and one client"
        );
        ensure!(
            k.workloads.iter().all(|w| (1..=5).contains(w)),
            "workloads are 1 to 5 (5: W2 via a GET+PUT save)"
        );
        ensure!(
            k.connections
                .iter()
                .chain(&k.audit_connections)
                .all(|&n| n >= 1),
            "connection counts must be positive"
        );
        ensure!(
            k.seconds > 0.0 && k.warmup >= 0.0 && k.audit_seconds > 0.0,
            "durations must be positive"
        );
        ensure!(
            (1..=1000).contains(&k.history_limit),
            "KT_BENCH_HISTORY_LIMIT is 1 to 1000"
        );
        ensure!(
            k.audit_rounds >= 1 && k.server_threads >= 1 && k.read_connections >= 1,
            "need a round, a thread and a read connection"
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
// CPU accounting from /proc: the generator's thread, this process, the machine, and the
// PostgreSQL backends serving the bench database
// ---------------------------------------------------------------------------------------

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, almost always 100).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time of the calling thread, in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in ticks.
fn proc_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Busy ticks of the whole machine (all cores), from the first line of `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

/// The PostgreSQL backends serving database `db` (found by their process titles,
/// "postgres: USER DB ADDR ..."), with their CPU ticks so far.
fn pg_backend_ticks(db: &str) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let needle = format!(" {db} ");
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("postgres: ")
            && cmd.contains(&needle)
            && let Some(t) = proc_ticks(&pid.to_string())
        {
            out.insert(pid, t);
        }
    }
    out
}

/// Context switches so far of each thread of this process (voluntary and not).
fn thread_switches() -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let n: u64 = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        out.insert(tid, n);
    }
    out
}

/// The growth of per-id counters between two snapshots; an id that appeared in between
/// counts from zero.
fn growth(a: &HashMap<u32, u64>, b: &HashMap<u32, u64>) -> u64 {
    b.iter()
        .map(|(id, n)| n.saturating_sub(a.get(id).copied().unwrap_or(0)))
        .sum()
}

#[derive(Clone, Debug)]
struct CpuSnapshot {
    at: Instant,
    generator_ns: u64,
    process_ticks: u64,
    machine_ticks: u64,
    pg: HashMap<u32, u64>,
    switches: HashMap<u32, u64>,
}

impl CpuSnapshot {
    /// Taken on the generator's thread, so `thread-self` is the generator.
    fn take(pg_db: Option<&str>) -> Self {
        Self {
            at: Instant::now(),
            generator_ns: thread_cpu_ns(),
            process_ticks: proc_ticks("self").unwrap_or(0),
            machine_ticks: machine_busy_ticks(),
            pg: pg_db.map(pg_backend_ticks).unwrap_or_default(),
            switches: thread_switches(),
        }
    }
}

/// CPU used over a window, in nanoseconds.
#[derive(Clone, Debug, Default)]
struct CpuUse {
    window_ns: f64,
    generator_ns: f64,
    /// This process minus the generator: server, ledger and (SQLite) the database.
    server_ns: f64,
    /// PostgreSQL backends of the bench database; None when none were found.
    pg_ns: Option<f64>,
    machine_ns: f64,
    /// Context switches of this process's threads.
    switches: f64,
}

impl CpuUse {
    fn between(a: &CpuSnapshot, b: &CpuSnapshot, tick_ns: f64) -> Self {
        let generator_ns = b.generator_ns.saturating_sub(a.generator_ns) as f64;
        let process_ns = b.process_ticks.saturating_sub(a.process_ticks) as f64 * tick_ns;
        let pg_ticks = growth(&a.pg, &b.pg);
        Self {
            window_ns: (b.at - a.at).as_nanos() as f64,
            generator_ns,
            server_ns: (process_ns - generator_ns).max(0.0),
            pg_ns: (!b.pg.is_empty()).then_some(pg_ticks as f64 * tick_ns),
            machine_ns: b.machine_ticks.saturating_sub(a.machine_ticks) as f64 * tick_ns,
            switches: growth(&a.switches, &b.switches) as f64,
        }
    }

    fn add(&mut self, o: &Self) {
        self.window_ns += o.window_ns;
        self.generator_ns += o.generator_ns;
        self.server_ns += o.server_ns;
        self.pg_ns = match (self.pg_ns, o.pg_ns) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        self.machine_ns += o.machine_ns;
        self.switches += o.switches;
    }
}

// ---------------------------------------------------------------------------------------
// The load generator's HTTP/1.1 client: keep-alive, Content-Length or chunked bodies
// ---------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    body: Vec<u8>,
    set_cookie: Option<String>,
}

impl Reply {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("a reply that is not JSON")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

struct HttpConn {
    stream: TcpStream,
    host: String,
    out: Vec<u8>,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            out: Vec::with_capacity(1024),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// One request, one reply. `headers` are complete lines without the CRLF.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        use std::io::Write as _;
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kt-bench\r\n",
            self.host
        )?;
        for h in headers {
            self.out.extend_from_slice(h.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        if let Some(b) = body {
            write!(
                self.out,
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )?;
        }
        self.out.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            self.out.extend_from_slice(b);
        }
        self.stream.write_all(&self.out).await?;
        self.read_reply().await
    }

    async fn fill(&mut self) -> Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        let mut searched = 0;
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n", searched) {
                break p + 4;
            }
            searched = self.buf.len().saturating_sub(3);
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("reply head")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("a reply without a status line"))?;
        let (mut length, mut chunked, mut set_cookie) = (None, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("set-cookie") {
                set_cookie = Some(value.to_owned());
            }
        }
        let body = if chunked {
            self.read_chunked(head_end).await?
        } else {
            let n = if matches!(status, 100..=199 | 204 | 304) {
                0
            } else {
                length.ok_or_else(|| anyhow!("a reply without Content-Length"))?
            };
            while self.buf.len() < head_end + n {
                self.fill().await?;
            }
            let body = self.buf[head_end..head_end + n].to_vec();
            self.buf.drain(..head_end + n);
            body
        };
        Ok(Reply {
            status,
            body,
            set_cookie,
        })
    }

    async fn read_chunked(&mut self, mut pos: usize) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n", pos) {
                    break p;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[pos..line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .context("chunk size")?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    if let Some(p) = find(&self.buf, b"\r\n", pos) {
                        let empty = p == pos;
                        pos = p + 2;
                        if empty {
                            break;
                        }
                    } else {
                        self.fill().await?;
                    }
                }
                self.buf.drain(..pos);
                return Ok(body);
            }
            while self.buf.len() < pos + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
    }
}

// ---------------------------------------------------------------------------------------
// A studio to measure: database, ledger, users, clients and a year of log
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

#[derive(Clone, Debug)]
struct User {
    id: i64,
    username: String,
    initials: String,
    name: String,
    /// May read the audit log (owner and managers): W4's requesters.
    audit_reader: bool,
}

struct Studio {
    backend: Backend,
    url: String,
    /// The PostgreSQL database name, to find its backends' CPU use.
    pg_name: Option<String>,
    ledger: Ledger,
    users: Vec<User>,
    clients: Arc<Vec<i64>>,
    /// W4's windows end inside this span (microseconds), which the backfill covers.
    span: (i64, i64),
}

fn record_id(out: &keeptrack::ledger::Outcome) -> Result<i64> {
    out.record
        .as_ref()
        .map(|r| r.id)
        .ok_or_else(|| anyhow!("a create answered without its record"))
}

async fn create_users(ledger: &Ledger, n: usize) -> Result<Vec<User>> {
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
        let initials = format!("U{}{}", letter(i / 26), letter(i));
        // One owner and three managers may read the audit log; the rest are staff.
        let group = match i {
            0 => "owner",
            1..=3 => "manager",
            _ => "staff",
        };
        let (username, name) = (format!("user{i}"), format!("Bench User {i}"));
        let f = fields(json!({
            "username": username,
            "display_name": name,
            "initials": initials,
            "security_group": group,
        }));
        let out = ledger
            .create_user(Context::system(), f, PASSWORD)
            .await
            .with_context(|| format!("create user {i}"))?;
        users.push(User {
            id: record_id(&out)?,
            username,
            initials,
            name,
            audit_reader: group != "staff",
        });
    }
    Ok(users)
}

/// Creates `n` clients through the ledger (audited, by the users in turn), each with a
/// first line in its notes as a studio's clients have; returns their ids and labels, by id.
///
/// Without the notes, PostgreSQL's statistics would describe an empty notes table when
/// setup settles the database, and the workloads would measure plans made for that (a
/// scan of the whole table for every latest revision) until autovacuum analysed it again
/// a minute or more into the run.
async fn create_clients(ledger: &Ledger, users: &[User], n: usize) -> Result<Vec<(i64, String)>> {
    const TASKS: usize = 64;
    let users: Arc<Vec<i64>> = Arc::new(users.iter().map(|u| u.id).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        let (ledger, users, next) = (ledger.clone(), users.clone(), next.clone());
        set.spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(made);
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
                let record = out
                    .record
                    .ok_or_else(|| anyhow!("a create answered without its record"))?;
                let label = RecordKind::Client.label(record.id, &record.fields);
                let command = Command::SaveNotes {
                    kind: RecordKind::Client,
                    id: record.id,
                    text: format!(
                        "Client since the {} season; prefers mornings.",
                        2020 + i % 6
                    ),
                    base_revision: 0,
                };
                ledger
                    .submit(Context::user(users[i % users.len()]), command)
                    .await
                    .with_context(|| format!("notes of client {i}"))?;
                made.push((record.id, label));
            }
        });
    }
    let mut made = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        made.extend(done??);
    }
    made.sort_unstable();
    Ok(made)
}

impl Studio {
    async fn open(
        backend: Backend,
        url: &str,
        pg_name: Option<String>,
        k: &Knobs,
        rng: &mut Rng,
    ) -> Result<Self> {
        let tag = backend.name();
        let t = Instant::now();
        let db = Db::open_with(url, k.read_connections)
            .await
            .context("open the database")?;
        let ledger = Ledger::start(db).await.context("start the ledger")?;
        let users = create_users(&ledger, k.users).await?;
        println!(
            "[{tag}] database, migrations and {} users in {:.1} s",
            users.len(),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let clients = create_clients(&ledger, &users, k.clients).await?;
        println!(
            "[{tag}] {} clients and their notes through the ledger in {:.1} s ({:.0} clients/s)",
            clients.len(),
            t.elapsed().as_secs_f64(),
            clients.len() as f64 / t.elapsed().as_secs_f64()
        );
        let now = keeptrack::clock::now().as_microsecond();
        let span = if k.entries > 0 {
            // A year, ending a minute before setup.
            let hi = now - 60_000_000;
            (hi - 365 * DAY_MICROS, hi)
        } else {
            (now - DAY_MICROS, now + 3_600_000_000)
        };
        if k.entries > 0 {
            let t = Instant::now();
            let authors: Vec<Author> = users
                .iter()
                .map(|u| Author {
                    id: u.id,
                    initials: u.initials.clone(),
                    name: u.name.clone(),
                })
                .collect();
            backfill_backdated_entries(ledger.db(), &authors, &clients, k.entries, span, rng)
                .await?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "[{tag}] backfilled {} backdated entries over 365 days in {secs:.1} s ({:.0}/s) \
                 (bench-only path, see backfill_backdated_entries)",
                k.entries,
                k.entries as f64 / secs
            );
        }
        // With or without the backfill: PostgreSQL's cached plans of the setup's
        // statements were made for tables far smaller than it left, and stay until the
        // statistics change (a scan of all the clients for every batch's read ahead,
        // in runs without the backfill, until autovacuum came round).
        if let Err(e) = settle(ledger.db()).await {
            println!("[{tag}] could not settle the database after setup: {e}");
        }
        let (size, _) = audit_log::head(ledger.db()).await?;
        println!("[{tag}] the log holds {size} entries");
        Ok(Self {
            backend,
            url: url.to_owned(),
            pg_name,
            ledger,
            users,
            clients: Arc::new(clients.into_iter().map(|(id, _)| id).collect()),
            span,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The workloads and the load generator
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// `PATCH` a random client's email (audited change).
    W1,
    /// Append a line to a random client's notes (a new revision): one `POST` to
    /// `…/notes/lines`, stamped as the front desk's CTRL+T line would be.
    W2,
    /// The same through a save: `GET` the notes, then `PUT` them back with the line
    /// added, naming the revision read (a 409 when a colleague saved in between).
    W2Save,
    /// Read a random client's history.
    W3,
    /// Audit query: one user, a random 7-day window, first 50 entries.
    W4,
}

impl Workload {
    fn from_number(n: u8) -> Self {
        match n {
            1 => Self::W1,
            2 => Self::W2,
            3 => Self::W3,
            5 => Self::W2Save,
            _ => Self::W4,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::W1 => "W1 PATCH email",
            Self::W2 => "W2 notes append",
            Self::W2Save => "W2 via GET+PUT save",
            Self::W3 => "W3 history",
            Self::W4 => "W4 audit query",
        }
    }
    /// The peer stack's figures from the issue (8 connections): req/s and p99 ms.
    fn peer(self, backend: Backend) -> (f64, f64) {
        match (backend, self) {
            (Backend::Sqlite, Self::W1) => (171.0, 847.0),
            (Backend::Sqlite, Self::W2 | Self::W2Save) => (185.0, 744.0),
            (Backend::Sqlite, Self::W3) => (285.0, 45.0),
            (Backend::Sqlite, Self::W4) => (211.0, 59.0),
            (Backend::Postgres, Self::W1) => (227.0, 84.0),
            (Backend::Postgres, Self::W2 | Self::W2Save) => (214.0, 78.0),
            (Backend::Postgres, Self::W3) => (237.0, 55.0),
            (Backend::Postgres, Self::W4) => (157.0, 126.0),
        }
    }
}

/// What one load run needs; shared by its connections.
struct LoadSpec {
    workload: Workload,
    connections: usize,
    warmup: Duration,
    window: Duration,
    addr: SocketAddr,
    /// `Authorization` header lines: every user's token, and the audit readers' tokens.
    auth: Arc<Vec<String>>,
    audit_auth: Arc<Vec<String>>,
    clients: Arc<Vec<i64>>,
    users: Arc<Vec<i64>>,
    span: (i64, i64),
    history_limit: i64,
    seed: u64,
    pg_name: Option<String>,
    tick_ns: f64,
}

/// One run's result over its timed window.
#[derive(Default)]
struct Load {
    /// Completed operations (W2 via a save: a GET and a PUT), HTTP requests, its 409s.
    ops: usize,
    requests: usize,
    conflicts: usize,
    errors: usize,
    first_error: Option<String>,
    latencies: Vec<Duration>,
    /// Sampled pages (W3, W4): items seen, pages sampled, full pages.
    items: usize,
    pages: usize,
    full_pages: usize,
    secs: f64,
    cpu: CpuUse,
}

impl Load {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn merge(&mut self, o: Self) {
        self.ops += o.ops;
        self.requests += o.requests;
        self.conflicts += o.conflicts;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.latencies.extend(o.latencies);
        self.items += o.items;
        self.pages += o.pages;
        self.full_pages += o.full_pages;
    }
}

enum OpResult {
    Ok {
        requests: usize,
        items: Option<usize>,
    },
    Conflict {
        requests: usize,
    },
    Error {
        requests: usize,
        detail: String,
    },
}

struct Worker {
    conn: HttpConn,
    auth: String,
    rng: Rng,
    id: usize,
    serial: u64,
}

impl Worker {
    async fn op(&mut self, spec: &LoadSpec) -> Result<OpResult> {
        self.serial += 1;
        let sample = self.serial.is_multiple_of(16);
        match spec.workload {
            Workload::W1 => {
                let id = *self.rng.pick(&spec.clients);
                let body = format!(
                    r#"{{"email":"c{id}.w{}.{}@example.com","reason":"bench"}}"#,
                    self.id, self.serial
                );
                let path = format!("/api/v1/clients/{id}");
                let r = self
                    .conn
                    .send(
                        "PATCH",
                        &path,
                        &[self.auth.as_str(), "If-Match: *"],
                        Some(body.as_bytes()),
                    )
                    .await?;
                Ok(match r.status {
                    200 => OpResult::Ok {
                        requests: 1,
                        items: None,
                    },
                    s => OpResult::Error {
                        requests: 1,
                        detail: format!("PATCH {path}: {s} {}", r.text()),
                    },
                })
            }
            Workload::W2 => {
                let id = *self.rng.pick(&spec.clients);
                let path = format!("/api/v1/clients/{id}/notes/lines");
                let line = format!("Bench line from connection {}, #{}", self.id, self.serial);
                let body = json!({"text": line}).to_string();
                let r = self
                    .conn
                    .send("POST", &path, &[self.auth.as_str()], Some(body.as_bytes()))
                    .await?;
                Ok(match r.status {
                    200 => OpResult::Ok {
                        requests: 1,
                        items: None,
                    },
                    s => OpResult::Error {
                        requests: 1,
                        detail: format!("POST {path}: {s} {}", r.text()),
                    },
                })
            }
            Workload::W2Save => {
                let id = *self.rng.pick(&spec.clients);
                let path = format!("/api/v1/clients/{id}/notes");
                let r = self
                    .conn
                    .send("GET", &path, &[self.auth.as_str()], None)
                    .await?;
                if r.status != 200 {
                    return Ok(OpResult::Error {
                        requests: 1,
                        detail: format!("GET {path}: {} {}", r.status, r.text()),
                    });
                }
                let notes = r.json()?;
                let revision = notes["revision"].as_i64().unwrap_or(0);
                let text = notes["text"].as_str().unwrap_or("");
                let line = format!("Bench line from connection {}, #{}", self.id, self.serial);
                let text = if text.is_empty() {
                    line
                } else {
                    format!("{text}\n{line}")
                };
                let body = json!({"text": text, "base_revision": revision}).to_string();
                let r = self
                    .conn
                    .send("PUT", &path, &[self.auth.as_str()], Some(body.as_bytes()))
                    .await?;
                Ok(match r.status {
                    200 => OpResult::Ok {
                        requests: 2,
                        items: None,
                    },
                    409 => OpResult::Conflict { requests: 2 },
                    s => OpResult::Error {
                        requests: 2,
                        detail: format!("PUT {path}: {s} {}", r.text()),
                    },
                })
            }
            Workload::W3 => {
                let id = *self.rng.pick(&spec.clients);
                let path = format!("/api/v1/clients/{id}/history?limit={}", spec.history_limit);
                let r = self
                    .conn
                    .send("GET", &path, &[self.auth.as_str()], None)
                    .await?;
                Ok(match r.status {
                    200 => OpResult::Ok {
                        requests: 1,
                        items: if sample {
                            r.json()?["items"].as_array().map(Vec::len)
                        } else {
                            None
                        },
                    },
                    s => OpResult::Error {
                        requests: 1,
                        detail: format!("GET {path}: {s} {}", r.text()),
                    },
                })
            }
            Workload::W4 => {
                let actor = *self.rng.pick(&spec.users);
                let (lo, hi) = spec.span;
                let week = 7 * DAY_MICROS;
                let to = (lo + week).min(hi)
                    + self.rng.below(u64::try_from((hi - lo - week).max(1))?) as i64;
                let from = to - week;
                let at = |us: i64| -> Result<String> {
                    Ok(Timestamp::from_second(us.div_euclid(1_000_000))?.to_string())
                };
                let path = format!(
                    "/api/v1/audit?actor={actor}&from={}&to={}&limit=50",
                    at(from)?,
                    at(to)?
                );
                let r = self
                    .conn
                    .send("GET", &path, &[self.auth.as_str()], None)
                    .await?;
                Ok(match r.status {
                    200 => OpResult::Ok {
                        requests: 1,
                        items: if sample {
                            r.json()?["entries"].as_array().map(Vec::len)
                        } else {
                            None
                        },
                    },
                    s => OpResult::Error {
                        requests: 1,
                        detail: format!("GET {path}: {s} {}", r.text()),
                    },
                })
            }
        }
    }

    /// A closed loop until `t1`; what completes inside `[t0, t1]` is counted.
    async fn run(mut self, spec: Arc<LoadSpec>, t0: Instant, t1: Instant) -> Result<Load> {
        let mut load = Load::default();
        loop {
            let began = Instant::now();
            if began >= t1 {
                break;
            }
            let result = self.op(&spec).await?;
            let done = Instant::now();
            let counted = done >= t0 && done <= t1;
            match result {
                OpResult::Ok { requests, items } if counted => {
                    load.ops += 1;
                    load.requests += requests;
                    load.latencies.push(done - began);
                    if let Some(n) = items {
                        load.items += n;
                        load.pages += 1;
                        let page = match spec.workload {
                            Workload::W3 => usize::try_from(spec.history_limit)?,
                            _ => 50,
                        };
                        load.full_pages += usize::from(n == page);
                    }
                }
                OpResult::Conflict { requests } if counted => {
                    load.conflicts += 1;
                    load.requests += requests;
                }
                OpResult::Error { requests, detail } => {
                    if counted {
                        load.errors += 1;
                        load.requests += requests;
                    }
                    load.first_error.get_or_insert(detail);
                }
                _ => {}
            }
        }
        Ok(load)
    }
}

/// Runs one load on a thread of its own with a current-thread runtime, so that the
/// generator's CPU time is that thread's.
async fn run_load(spec: LoadSpec) -> Result<Load> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kt-bench-load".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(generate(Arc::new(spec))));
            let _ = tx.send(result);
        })?;
    rx.await.map_err(|_| anyhow!("the load generator died"))?
}

async fn generate(spec: Arc<LoadSpec>) -> Result<Load> {
    let mut workers = Vec::with_capacity(spec.connections);
    for id in 0..spec.connections {
        let auth = match spec.workload {
            Workload::W4 => spec.audit_auth[id % spec.audit_auth.len()].clone(),
            _ => spec.auth[id % spec.auth.len()].clone(),
        };
        workers.push(Worker {
            conn: HttpConn::connect(spec.addr).await?,
            auth,
            rng: Rng::new(spec.seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            id,
            serial: 0,
        });
    }
    let t0 = Instant::now() + spec.warmup;
    let t1 = t0 + spec.window;
    let mut set = JoinSet::new();
    for w in workers {
        set.spawn(w.run(spec.clone(), t0, t1));
    }
    tokio::time::sleep_until(t0.into()).await;
    let a = CpuSnapshot::take(spec.pg_name.as_deref());
    tokio::time::sleep_until(t1.into()).await;
    let b = CpuSnapshot::take(spec.pg_name.as_deref());
    let mut load = Load::default();
    while let Some(done) = set.join_next().await {
        load.merge(done??);
    }
    load.secs = spec.window.as_secs_f64();
    load.cpu = CpuUse::between(&a, &b, spec.tick_ns);
    Ok(load)
}

// ---------------------------------------------------------------------------------------
// The database's own limit: the workloads' core statements, one at a time
// ---------------------------------------------------------------------------------------

/// A single connection to the studio's database with the production settings (for
/// SQLite: WAL, `synchronous=FULL`), outside the server and the ledger.
enum LimitDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on either backend's pool `$p`.
macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            LimitDb::Sqlite($p) => $body,
            LimitDb::Postgres($p) => $body,
        }
    };
}

/// One limit measurement: operations per second and their latencies.
struct Limit {
    rate: f64,
    stats: Stats,
    what: &'static str,
}

impl LimitDb {
    async fn open(backend: Backend, url: &str) -> Result<Self> {
        Ok(match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10));
                // The query keys' file beside the database, as the server attaches it.
                let main = options.get_filename().to_owned();
                Self::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .after_connect(move |conn, _| {
                            let main = main.clone();
                            Box::pin(
                                async move { keeptrack::store::attach_key_file(conn, &main).await },
                            )
                        })
                        .connect_with(options)
                        .await?,
                )
            }
            Backend::Postgres => {
                Self::Postgres(PgPoolOptions::new().max_connections(1).connect(url).await?)
            }
        })
    }

    async fn close(&self) {
        on_pool!(self, p => p.close().await);
    }

    /// The workload's core statement, `n` times one after another; writes are one-row
    /// transactions (autocommit), each committed before the next.
    async fn measure(&self, w: Workload, s: &Studio, k: &Knobs, rng: &mut Rng) -> Result<Limit> {
        let n = match w {
            Workload::W1 | Workload::W2 | Workload::W2Save => k.limit_writes,
            Workload::W3 | Workload::W4 => k.limit_reads,
        }
        .max(1);
        let run = rng.below(1 << 40) as i64;
        let users: Vec<i64> = s.users.iter().map(|u| u.id).collect();
        let mut lat = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            match w {
                Workload::W1 => {
                    let id = *rng.pick(&s.clients);
                    on_pool!(self, p => sqlx::query("UPDATE clients SET email = $1 WHERE id = $2")
                        .bind(format!("c{id}.limit{i}@example.com"))
                        .bind(id)
                        .execute(p)
                        .await
                        .map(|_| ()))?;
                }
                Workload::W2 | Workload::W2Save => {
                    // A record type of its own, so that no client's notes change.
                    on_pool!(self, p => sqlx::query(
                        "INSERT INTO note_revisions (record_type, record_id, revision, ts, \
                         author_kind, author_id, author_initials, author_name, body) \
                         VALUES ('bench_limit', $1, $2, $3, 'user', $4, 'UAA', 'Bench User 0', $5)")
                        .bind(run)
                        .bind(i as i64)
                        .bind(keeptrack::clock::now().as_microsecond())
                        .bind(users[0])
                        .bind(format!("Bench line {i} of the database's own limit"))
                        .execute(p)
                        .await
                        .map(|_| ()))?;
                }
                Workload::W3 => {
                    let id = *rng.pick(&s.clients);
                    // How each database finds a record's entries: SQLite walks the
                    // record's chain from the head on its row (migration 15), PostgreSQL
                    // reads its index by record on the log (0015).
                    let sql = match s.backend {
                        Backend::Sqlite => {
                            "WITH RECURSIVE chain (idx, prev) AS ( \
                               SELECT l.idx, l.prev_idx FROM clients c \
                                 JOIN audit_log l ON l.idx = c.audit_head \
                                 WHERE $1 = 'client' AND c.id = $2 \
                               UNION ALL SELECT l.idx, l.prev_idx FROM chain \
                                 JOIN audit_log l ON l.idx = chain.prev) \
                             SELECT l.idx, l.ts, l.entry FROM (SELECT idx FROM chain LIMIT $3) \
                               AS c JOIN audit_log l ON l.idx = c.idx"
                        }
                        Backend::Postgres => {
                            "SELECT idx, ts, entry FROM audit_log WHERE record_type = $1 \
                             AND record_id = $2 ORDER BY ts DESC, idx DESC LIMIT $3"
                        }
                    };
                    let rows: Vec<(i64, i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(sql)
                        .bind(RecordKind::Client.as_str())
                        .bind(id)
                        .bind(k.history_limit + 1)
                        .fetch_all(p)
                        .await)?;
                    std::hint::black_box(rows);
                }
                Workload::W4 => {
                    let (lo, hi) = s.span;
                    let week = 7 * DAY_MICROS;
                    let to = ((lo + week).min(hi)
                        + rng.below(u64::try_from((hi - lo - week).max(1))?) as i64)
                        .div_euclid(1_000_000)
                        * 1_000_000;
                    let rows: Vec<(i64, i64, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
                        "SELECT l.idx, l.ts, l.entry FROM audit_keys k \
                         JOIN audit_log l ON l.idx = k.idx WHERE k.ts >= $1 AND k.ts < $2 \
                         AND k.actor_id = $3 ORDER BY k.ts DESC, k.idx DESC LIMIT $4")
                        .bind(to - week)
                        .bind(to)
                        .bind(*rng.pick(&users))
                        .bind(51_i64)
                        .fetch_all(p)
                        .await)?;
                    std::hint::black_box(rows);
                }
            }
            lat.push(t.elapsed());
        }
        Ok(Limit {
            rate: n as f64 / started.elapsed().as_secs_f64(),
            stats: Stats::new(&lat),
            what: match w {
                Workload::W1 => "UPDATE clients SET email (one-row autocommit)",
                Workload::W2 | Workload::W2Save => {
                    "INSERT INTO note_revisions (one-row autocommit)"
                }
                Workload::W3 => "SELECT a client's audit entries (chain / record index)",
                Workload::W4 => "SELECT an actor's 7-day window (actor index)",
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Running one backend
// ---------------------------------------------------------------------------------------

/// The server, the tokens and what the loads need.
struct Bench<'a> {
    studio: &'a Studio,
    knobs: &'a Knobs,
    addr: SocketAddr,
    auth: Arc<Vec<String>>,
    audit_auth: Arc<Vec<String>>,
    /// The owner's `Authorization` line, for the audit switch.
    owner_auth: String,
    tick_ns: f64,
}

impl Bench<'_> {
    fn spec(
        &self,
        workload: Workload,
        connections: usize,
        warmup: f64,
        secs: f64,
        seed: u64,
    ) -> LoadSpec {
        let s = self.studio;
        LoadSpec {
            workload,
            connections,
            warmup: Duration::from_secs_f64(warmup),
            window: Duration::from_secs_f64(secs),
            addr: self.addr,
            auth: self.auth.clone(),
            audit_auth: self.audit_auth.clone(),
            clients: s.clients.clone(),
            users: Arc::new(s.users.iter().map(|u| u.id).collect()),
            span: s.span,
            history_limit: self.knobs.history_limit,
            seed,
            pg_name: s.pg_name.clone(),
            tick_ns: self.tick_ns,
        }
    }

    async fn log_size(&self) -> Result<i64> {
        let mut c = HttpConn::connect(self.addr).await?;
        let r = c.send("GET", "/readyz", &[], None).await?;
        ensure!(r.status == 200, "readyz: {} {}", r.status, r.text());
        r.json()?["log_size"]
            .as_i64()
            .ok_or_else(|| anyhow!("readyz without log_size"))
    }

    async fn set_clients_audit(&self, on: bool) -> Result<()> {
        let mut c = HttpConn::connect(self.addr).await?;
        let body = json!({"value": if on { "on" } else { "off" }}).to_string();
        let r = c
            .send(
                "PUT",
                "/api/v1/preferences/audit.clients",
                &[self.owner_auth.as_str()],
                Some(body.as_bytes()),
            )
            .await?;
        ensure!(r.status == 200, "audit switch: {} {}", r.status, r.text());
        Ok(())
    }
}

/// Signs every user in and makes each an API token (as an integration would).
async fn make_tokens(addr: SocketAddr, users: &[User]) -> Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(users.len());
    for u in users {
        let mut c = HttpConn::connect(addr).await?;
        let body = json!({"username": u.username, "password": PASSWORD}).to_string();
        let r = c
            .send("POST", "/api/v1/session", &[], Some(body.as_bytes()))
            .await?;
        ensure!(
            r.status == 201,
            "sign-in of {}: {} {}",
            u.username,
            r.status,
            r.text()
        );
        let cookie = r
            .set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| anyhow!("sign-in without a cookie"))?
            .to_owned();
        let csrf = r.json()?["csrf_token"]
            .as_str()
            .ok_or_else(|| anyhow!("sign-in without a CSRF token"))?
            .to_owned();
        let body = json!({"name": "http bench"}).to_string();
        let r = c
            .send(
                "POST",
                "/api/v1/tokens",
                &[
                    format!("Cookie: {cookie}").as_str(),
                    format!("X-CSRF-Token: {csrf}").as_str(),
                ],
                Some(body.as_bytes()),
            )
            .await?;
        ensure!(
            r.status == 201,
            "token of {}: {} {}",
            u.username,
            r.status,
            r.text()
        );
        let token = r.json()?["token"]
            .as_str()
            .ok_or_else(|| anyhow!("a token reply without the token"))?
            .to_owned();
        tokens.push(format!("Authorization: Bearer {token}"));
    }
    Ok(tokens)
}

/// One row of the final table.
struct Row {
    workload: Workload,
    connections: usize,
    load: Load,
    /// The database's own limit for the workload's statements, per second.
    limit: Option<f64>,
}

fn describe_cpu(load: &Load) -> String {
    let c = &load.cpu;
    let per_req = |ns: f64| ns / 1e3 / load.requests.max(1) as f64;
    let pg = c
        .pg_ns
        .map(|ns| format!(", PostgreSQL {:.0} µs/req", per_req(ns)))
        .unwrap_or_default();
    let ours = c.generator_ns + c.server_ns + c.pg_ns.unwrap_or(0.0);
    format!(
        "generator {:.0}% of a core ({:.0} µs/req); server process {:.0} µs/req{pg}, {:.1} \
         context switches/req; machine busy {:.0}% of one core, {:.0}% of it other processes",
        100.0 * c.generator_ns / c.window_ns,
        per_req(c.generator_ns),
        per_req(c.server_ns),
        c.switches / load.requests.max(1) as f64,
        100.0 * c.machine_ns / c.window_ns,
        100.0 * (c.machine_ns - ours).max(0.0) / c.window_ns,
    )
}

async fn run_workloads(b: &Bench<'_>, rng: &mut Rng) -> Result<Vec<Row>> {
    let (s, k) = (b.studio, b.knobs);
    let tag = s.backend.name();
    let limit_db = LimitDb::open(s.backend, &s.url).await?;
    let mut rows = Vec::new();
    for &n in &k.workloads {
        let w = Workload::from_number(n);
        // The limit is measured just before and just after the workload's runs; the
        // higher of the two is the limit (a stall of this shared machine lowers one).
        let before = limit_db.measure(w, s, k, rng).await?;
        let first = rows.len();
        for &c in &k.connections {
            let (batches, commands) = s.ledger.batch_stats();
            let load = run_load(b.spec(w, c, k.warmup, k.seconds, rng.next_u64())).await?;
            let (batches, commands) = {
                let (b, c) = s.ledger.batch_stats();
                (b - batches, c - commands)
            };
            let st = Stats::new(&load.latencies);
            let mut extra = String::new();
            if w == Workload::W2Save {
                extra = format!(
                    " ({:.0} HTTP req/s; {} conflicts, 409)",
                    load.requests as f64 / load.secs,
                    load.conflicts
                );
            }
            if batches > 0 && matches!(w, Workload::W1 | Workload::W2 | Workload::W2Save) {
                // Warm-up included: the ledger counts from start to finish.
                extra.push_str(&format!(
                    " ({:.1} commands per commit)",
                    commands as f64 / batches as f64
                ));
            }
            if load.pages > 0 {
                extra = format!(
                    " (sampled pages: {:.1} items on average, {} of {} full)",
                    load.items as f64 / load.pages as f64,
                    load.full_pages,
                    load.pages
                );
            }
            println!(
                "[{tag}] {} {c:>2} conns: {:>6.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors{extra}",
                w.title(),
                load.rate(),
                st.median(),
                st.pct(0.99),
                load.errors
            );
            println!("[{tag}]        {}", describe_cpu(&load));
            if let Some(e) = &load.first_error {
                println!("[{tag}]        first error: {e}");
            }
            rows.push(Row {
                workload: w,
                connections: c,
                load,
                limit: None,
            });
        }
        let after = limit_db.measure(w, s, k, rng).await?;
        for (when, l) in [("before", &before), ("after", &after)] {
            println!(
                "[{tag}] {}: the database's own limit {when}, {} one at a time: {:.0}/s, \
                 median {:.3} ms, p99 {:.3} ms",
                w.title(),
                l.what,
                l.rate,
                l.stats.median(),
                l.stats.pct(0.99)
            );
        }
        for row in &mut rows[first..] {
            row.limit = Some(before.rate.max(after.rate));
        }
    }
    limit_db.close().await;
    Ok(rows)
}

/// W1 with the Clients category on and off: alternating rounds, order flipped each round.
struct AuditSwitch {
    connections: usize,
    on: Load,
    off: Load,
    on_rates: Vec<f64>,
    off_rates: Vec<f64>,
    round_ratios: Vec<f64>,
}

async fn run_audit_switch(b: &Bench<'_>, connections: usize, rng: &mut Rng) -> Result<AuditSwitch> {
    let (s, k) = (b.studio, b.knobs);
    let tag = s.backend.name();
    let mut out = AuditSwitch {
        connections,
        on: Load::default(),
        off: Load::default(),
        on_rates: Vec::new(),
        off_rates: Vec::new(),
        round_ratios: Vec::new(),
    };
    for round in 0..k.audit_rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut rates = [0.0; 2];
        for on in order {
            b.set_clients_audit(on).await?;
            let before = b.log_size().await?;
            let load = run_load(b.spec(
                Workload::W1,
                connections,
                1.0_f64.min(k.warmup.max(0.2)),
                k.audit_seconds,
                rng.next_u64(),
            ))
            .await?;
            let grew = b.log_size().await? - before;
            if let Some(e) = &load.first_error {
                bail!(
                    "W1 failed with auditing {}: {e}",
                    if on { "on" } else { "off" }
                );
            }
            // Auditing off: the log must not grow; on: at least one entry per write.
            if on {
                ensure!(
                    grew >= load.ops as i64,
                    "auditing on, yet the log grew by {grew} for {} writes",
                    load.ops
                );
            } else {
                ensure!(grew == 0, "auditing off, yet the log grew by {grew}");
            }
            rates[usize::from(!on)] = load.rate();
            let (total, list) = if on {
                (&mut out.on, &mut out.on_rates)
            } else {
                (&mut out.off, &mut out.off_rates)
            };
            list.push(load.rate());
            let cpu = load.cpu.clone();
            let secs = load.secs;
            total.merge(load);
            total.secs += secs;
            total.cpu.add(&cpu);
        }
        out.round_ratios.push(rates[1] / rates[0]);
    }
    b.set_clients_audit(true).await?;
    let (on, off) = (
        Stats::new(&out.on.latencies),
        Stats::new(&out.off.latencies),
    );
    println!(
        "[{tag}] W1 audit on/off, {connections} conns, {} rounds of {} s per mode: ON {:.0} ops/s \
         (p50 {:.2} ms, p99 {:.2} ms), OFF {:.0} ops/s (p50 {:.2} ms, p99 {:.2} ms); per-round \
         throughput ratios off/on: {}",
        k.audit_rounds,
        k.audit_seconds,
        out.on.rate(),
        on.median(),
        on.pct(0.99),
        out.off.rate(),
        off.median(),
        off.pct(0.99),
        out.round_ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(out)
}

fn tables(s: &Studio, k: &Knobs, rows: &[Row], switches: &[AuditSwitch]) -> String {
    let mut out = String::new();
    macro_rules! say {
        ($($t:tt)*) => {{
            out.push_str(&format!($($t)*));
            out.push('\n');
        }};
    }
    let tag = s.backend.name();
    let db = match s.backend {
        Backend::Sqlite => "SQLite (WAL, synchronous=FULL)",
        Backend::Postgres => "PostgreSQL",
    };
    say!("");
    say!(
        "[{tag}] {db}; {} clients, {} users, {} backdated entries over a year; {} s timed per \
         row after {} s warm-up",
        k.clients,
        k.users,
        k.entries,
        k.seconds,
        k.warmup
    );
    say!(
        "| workload | conns | ops/s | p50 ms | p99 ms | errors, 409s | DB limit/s (1 at a time, best of 2) | \
         ÷ limit | peer req/s (8 conns) | × peer | generator CPU | server CPU µs/req |"
    );
    say!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let st = Stats::new(&r.load.latencies);
        let (peer, _) = r.workload.peer(s.backend);
        let (limit, ratio) = match r.limit {
            Some(l) => (format!("{l:.0}"), format!("{:.2}×", r.load.rate() / l)),
            None => ("-".into(), "-".into()),
        };
        let c = &r.load.cpu;
        let server = c.server_ns + c.pg_ns.unwrap_or(0.0);
        say!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {limit} | {ratio} | {peer:.0} | {:.1}× | {:.0}% \
             of a core | {:.0} |",
            r.workload.title(),
            r.connections,
            r.load.rate(),
            st.median(),
            st.pct(0.99),
            r.load.errors + r.load.conflicts,
            r.load.rate() / peer,
            100.0 * c.generator_ns / c.window_ns,
            server / 1e3 / r.load.requests.max(1) as f64,
        );
    }
    say!("");
    say!("[{tag}] targets:");
    for r in rows {
        let st = Stats::new(&r.load.latencies);
        let (peer, _) = r.workload.peer(s.backend);
        if r.connections == 8 {
            let x = r.load.rate() / peer;
            say!(
                "[{tag}]   {} ≥ 20× the peer's {peer:.0} req/s at 8 conns: {:.0}/s = {x:.1}×: {}",
                r.workload.title(),
                r.load.rate(),
                verdict(x >= 20.0)
            );
        }
        let p99 = st.pct(0.99);
        match (r.workload, r.connections) {
            (Workload::W1 | Workload::W2 | Workload::W2Save, 64) => say!(
                "[{tag}]   {} p99 < 50 ms at 64 conns: {p99:.2} ms: {}",
                r.workload.title(),
                verdict(p99 < 50.0)
            ),
            (Workload::W3 | Workload::W4, 8) => say!(
                "[{tag}]   {} p99 < 5 ms at 8 conns: {p99:.2} ms: {}",
                r.workload.title(),
                verdict(p99 < 5.0)
            ),
            _ => {}
        }
    }
    for a in switches {
        let (on, off) = (Stats::new(&a.on.latencies), Stats::new(&a.off.latencies));
        let tput = a.off.rate() / a.on.rate();
        let p50 = on.median() / off.median();
        let p99 = on.pct(0.99) / off.pct(0.99);
        say!(
            "[{tag}]   W1 audit on vs off at {} conns ≤ 1.1×: throughput off/on {tput:.2}× \
             (median of rounds {:.2}×), p50 on/off {p50:.2}×, p99 on/off {p99:.2}×: {}",
            a.connections,
            median_of(&a.round_ratios),
            // "In latency and throughput": the tail counts as much as the median.
            verdict(tput <= 1.1 && p50 <= 1.1 && p99 <= 1.1)
        );
        say!(
            "[{tag}]     ON {:.0} ops/s p50 {:.2} ms p99 {:.2} ms (rounds {}); OFF {:.0} ops/s p50 \
             {:.2} ms p99 {:.2} ms (rounds {})",
            a.on.rate(),
            on.median(),
            on.pct(0.99),
            a.on_rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
            a.off.rate(),
            off.median(),
            off.pct(0.99),
            a.off_rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out
}

async fn run_backend(
    backend: Backend,
    url: &str,
    pg_name: Option<String>,
    knobs: &Knobs,
) -> Result<String> {
    let tag = backend.name();
    let started = Instant::now();
    let mut rng = Rng::new(knobs.seed);
    let studio = Studio::open(backend, url, pg_name, knobs, &mut rng).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve(
        listener,
        web::AppState::new(studio.ledger.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let tokens = make_tokens(addr, &studio.users).await?;
    let audit_auth: Vec<String> = studio
        .users
        .iter()
        .zip(&tokens)
        .filter(|(u, _)| u.audit_reader)
        .map(|(_, t)| t.clone())
        .collect();
    println!(
        "[{tag}] server on {addr}; {} API tokens ({} may read the audit log); setup took {:.1} s",
        tokens.len(),
        audit_auth.len(),
        started.elapsed().as_secs_f64()
    );
    let bench = Bench {
        studio: &studio,
        knobs,
        addr,
        owner_auth: tokens[0].clone(),
        auth: Arc::new(tokens),
        audit_auth: Arc::new(audit_auth),
        tick_ns: 1e9 / clock_ticks(),
    };
    let result = async {
        let rows = run_workloads(&bench, &mut rng).await?;
        let mut switches = Vec::new();
        for &c in &knobs.audit_connections {
            switches.push(run_audit_switch(&bench, c, &mut rng).await?);
        }
        let tables = tables(&studio, knobs, &rows, &switches);
        println!("\n{tables}");
        Ok::<_, anyhow::Error>(tables)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    studio.ledger.db().close().await;
    println!("[{tag}] done in {:.1} s", started.elapsed().as_secs_f64());
    result
}

fn unique_suffix() -> String {
    let micros = keeptrack::clock::now().as_microsecond();
    format!(
        "{}_{}",
        std::process::id(),
        micros.rem_euclid(1_000_000_000)
    )
}

async fn run_sqlite(knobs: &Knobs) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("kt_bench_http_{}", unique_suffix()));
    std::fs::create_dir_all(&dir)?;
    println!("[sqlite] files in {}", dir.display());
    let url = format!("sqlite://{}", dir.join("keeptrack.db").display());
    let result = run_backend(Backend::Sqlite, &url, None, knobs).await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("[sqlite] could not remove {}: {e}", dir.display());
    }
    result
}

async fn run_postgres(admin_url: &str, knobs: &Knobs) -> Result<String> {
    let name = format!("kt_bench_http_{}", unique_suffix());
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
    let result = run_backend(Backend::Postgres, &url, Some(name.clone()), knobs).await;
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
    // As the binary logs (`KEEPTRACK_LOG`, default every request at info), formatted into
    // a sink, or into the file `KT_BENCH_LOG_FILE` names (e.g. with
    // `KEEPTRACK_LOG=sqlx::query=debug` to count the statements of a request).
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEPTRACK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,keeptrack=info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match std::env::var("KT_BENCH_LOG_FILE") {
        Ok(path) => logs
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(std::fs::File::create(&path)?))
            .init(),
        Err(_) => logs.with_writer(std::io::sink).init(),
    }
    // The server's runtime: like the binary's on this 2-core machine. The load generator
    // runs on threads of its own (see `run_load`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(knobs.server_threads)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let title = format!(
            "keeptrack HTTP benchmarks, {}",
            keeptrack::clock::now().strftime("%Y-%m-%d %H:%M UTC")
        );
        println!("{title}; knobs: {knobs:?}");
        let mut summaries = Vec::new();
        if matches!(knobs.backends.as_str(), "sqlite" | "both") {
            summaries.push(run_sqlite(&knobs).await?);
        }
        if matches!(knobs.backends.as_str(), "postgres" | "both") {
            match std::env::var("KEEPTRACK_TEST_DATABASE_URL") {
                Ok(admin) => summaries.push(run_postgres(&admin, &knobs).await?),
                Err(_) => println!("[postgres] skipped: KEEPTRACK_TEST_DATABASE_URL is not set"),
            }
        }
        println!();
        println!(
            "summary: {title}, {:.0} s in all; ratios are against baselines from this run",
            started.elapsed().as_secs_f64()
        );
        for tables in summaries {
            println!("{tables}");
        }
        Ok(())
    })
}
