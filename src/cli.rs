//! The `keeptrack` command: serve, init, user, demo, audit.

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use jiff::{Timestamp, tz::TimeZone};
use serde_json::json;

use crate::{
    audit::{self, checkpoint},
    clock,
    config::{DEFAULT_DATABASE_URL, redact_url},
    demo,
    domain::{
        audit::{Action, Category, Entry},
        record::{Fields, RecordKind},
    },
    ledger::{ActorRef, Context, Ledger, password},
    store::{self, Db},
    web,
};

#[derive(Parser, Debug)]
#[command(
    name = "keeptrack",
    version,
    about = "A studio back office in which every change is accounted for"
)]
pub struct Cli {
    /// Database: sqlite://FILE (created if missing) or postgres://USER:PASS@HOST/DB.
    #[arg(long, env = "KEEPTRACK_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// PostgreSQL: connections pooled for reads; the writer has one more of its own, and
    /// one more hears changes to access.
    /// [default: the machine's cores + 1]
    #[arg(long, env = "KEEPTRACK_DATABASE_POOL", global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool: Option<u32>,
    /// The log's Ed25519 signing key (created by init or the first serve). Keep it out
    /// of the database's backups; `<path>.pub` beside it is the public key for auditors.
    #[arg(
        long,
        env = "KEEPTRACK_SIGNING_KEY",
        default_value = "keeptrack.key",
        global = true
    )]
    pub signing_key: PathBuf,
    /// Where signed checkpoints are written: meant to be a mount or a synced folder off
    /// this machine.
    #[arg(
        long,
        env = "KEEPTRACK_CHECKPOINT_DIR",
        default_value = "checkpoints",
        global = true
    )]
    pub checkpoint_dir: PathBuf,
    /// Log format for the server's own logs.
    #[arg(long, env = "KEEPTRACK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the HTTP server (creates the database and the owner account on first run).
    Serve {
        #[arg(long, env = "KEEPTRACK_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seconds between checkpoints while the log grows.
        #[arg(long, default_value_t = 60)]
        checkpoint_every: u64,
        /// Seconds after which a checkpoint is made even if nothing changed.
        #[arg(long, default_value_t = 900)]
        heartbeat: u64,
        /// Where the retention schedule (preference audit.retention_days) writes its
        /// signed archive files: like the checkpoints, best a folder off this machine.
        #[arg(long, env = "KEEPTRACK_ARCHIVE_DIR", default_value = "archives")]
        archive_dir: PathBuf,
        /// Seconds between looks at the retention preference.
        #[arg(long, default_value_t = 3600)]
        archive_every: u64,
    },
    /// Create the database and the owner account; prints a one-time password.
    Init {
        #[arg(long, default_value = "owner")]
        username: String,
        #[arg(long, default_value = "Studio Owner")]
        name: String,
        #[arg(long, default_value = "OWN")]
        initials: String,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Fill an empty studio with realistic data, all through the audited write path.
    Demo {
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        #[arg(long, default_value_t = 5000)]
        sessions: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Load for soak and crash tests: concurrent writers each adding clients, printing
    /// `ack WRITER N ID` once each write is durable. Runs until done or killed.
    Stress {
        #[arg(long, default_value_t = 32)]
        writers: usize,
        #[arg(long, default_value_t = 1000)]
        writes: usize,
    },
    /// A consistent copy of the live SQLite database (PostgreSQL: use pg_dump). Restoring
    /// an old copy is caught by `audit verify` against newer checkpoints.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user; prints a generated password unless --password-stdin is given.
    Add {
        #[arg(long)]
        username: String,
        /// Display name, e.g. "Mary K Hill".
        #[arg(long)]
        name: String,
        /// 2 to 4 letters, used in time stamps.
        #[arg(long)]
        initials: String,
        /// owner, manager or staff.
        #[arg(long, default_value = "staff")]
        group: String,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// List entries, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Continue after the page that printed this cursor.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Recompute the log from its stored bytes and name the first damage.
    /// Exit 0 ok, 1 tampered, 2 could not verify, 3 warnings.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The trusted public key (a file, or the key itself); default: the signing
        /// key's `.pub` file, if present. Never read from the database.
        #[arg(long)]
        key: Option<String>,
        /// A directory (or file) of trusted checkpoints; default: the checkpoint directory.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Verify incrementally: trust the checkpoint of N entries (one of the trusted
        /// ones), check that the log still extends it, and recompute only entries N on.
        #[arg(long, value_name = "N")]
        from: Option<u64>,
    },
    /// Export entries (same filters as list) as JSON Lines or CSV, newest first.
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write an offline proof bundle for one entry (see docs/PROOFS.md).
    Prove {
        /// The entry's index.
        index: u64,
        #[arg(long)]
        out: PathBuf,
        /// The log's public key; default: the signing key's .pub file.
        #[arg(long)]
        key: Option<String>,
    },
    /// Check a proof bundle, with no database. Exit 0 proven, 1 not.
    Check {
        file: PathBuf,
        /// The key you trust; without it the bundle's own key is used (and said so).
        #[arg(long)]
        key: Option<String>,
    },
    /// Move the bodies of entries older than DATE into a signed archive file that checks
    /// on its own (see docs/PROOFS.md); the tree keeps their hashes, so the log still
    /// verifies. Recorded as a System entry. Needs the signing key.
    Archive {
        /// Entries timed before this date (studio time, start of day) or instant.
        #[arg(long)]
        before: String,
        /// The new archive file (never overwritten), or a directory to name one in.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check archive files, with no database; several must chain into one log.
    /// Exit 0 valid, 1 not.
    CheckArchive {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The key you trust; without it each file's own key is used (and said so).
        #[arg(long)]
        key: Option<String>,
    },
}

/// The filters `audit list` and `audit export` share.
#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// From this date (YYYY-MM-DD, studio time) or instant (RFC 3339), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Up to this date (inclusive) or instant (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// A user's username, initials or id.
    #[arg(long)]
    actor: Option<String>,
    /// appointments, clients, invoices, payments, sessions, user_authentication,
    /// invoice_discounts or system.
    #[arg(long)]
    category: Option<String>,
    /// create, update, delete, restore, post, unlock, void, notes, communication,
    /// checkpoint, start, stop, install, preference, alarm, clock_backwards or archive.
    #[arg(long)]
    action: Option<String>,
    /// A record type (client) or one record (client:12).
    #[arg(long)]
    record: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let url = cli.database_url.clone();
    // Checking a proof bundle needs no database: an auditor runs it anywhere.
    if let Cmd::Audit(AuditCmd::Check { file, key }) = &cli.command {
        return audit_check(file, key.as_deref(), &cli.signing_key);
    }
    if let Cmd::Audit(AuditCmd::CheckArchive { files, key }) = &cli.command {
        return audit_check_archive(files, key.as_deref(), &cli.signing_key);
    }
    let pool = cli
        .database_pool
        .unwrap_or_else(store::default_read_connections);
    let db = Db::open_with(&url, pool)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    // Reading commands start no writer, so they change nothing, not even a new database.
    let writes = matches!(
        cli.command,
        Cmd::Serve { .. } | Cmd::Init { .. } | Cmd::User(_) | Cmd::Demo { .. } | Cmd::Stress { .. }
    );
    let ledger = if writes {
        Some(Ledger::start(db.clone()).await?)
    } else {
        None
    };
    let result = match (cli.command, ledger) {
        (
            Cmd::Serve {
                listen,
                checkpoint_every,
                heartbeat,
                archive_dir,
                archive_every,
            },
            Some(ledger),
        ) => {
            let keys = Keys {
                key: cli.signing_key.clone(),
                dir: cli.checkpoint_dir.clone(),
                archive_dir,
                archive_every: Duration::from_secs(archive_every.max(1)),
            };
            let every = Duration::from_secs(checkpoint_every.max(1));
            let heartbeat = Duration::from_secs(heartbeat.max(1));
            serve(ledger, &url, listen, &keys, every, heartbeat).await
        }
        (
            Cmd::Init {
                username,
                name,
                initials,
            },
            Some(ledger),
        ) => {
            init(&ledger, &username, &name, &initials).await?;
            ensure_key(ledger.db(), &cli.signing_key).await?;
            Ok(ExitCode::SUCCESS)
        }
        (
            Cmd::User(UserCmd::Add {
                username,
                name,
                initials,
                group,
                email,
                password_stdin,
            }),
            Some(ledger),
        ) => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let fields = user_fields(&username, &name, &initials, &group, email.as_deref());
            add_user(&ledger, fields, password).await
        }
        (
            Cmd::Demo {
                clients,
                sessions,
                seed,
            },
            Some(ledger),
        ) => {
            run_demo(
                &ledger,
                demo::Plan {
                    clients,
                    sessions,
                    seed,
                },
            )
            .await
        }
        (
            Cmd::Audit(AuditCmd::Export {
                filter,
                format,
                out,
            }),
            _,
        ) => {
            let q = audit_query(&db, filter, audit::MAX_PAGE, None).await?;
            let format = match format {
                ExportFormat::Jsonl => audit::export::Format::Jsonl,
                ExportFormat::Csv => audit::export::Format::Csv,
            };
            let count = match &out {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    );
                    audit::export::export(&db, &q, format, &mut file).await?
                }
                None => {
                    audit::export::export(&db, &q, format, &mut std::io::stdout().lock()).await?
                }
            };
            if let Some(path) = out {
                eprintln!("Exported {count} entries to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        (Cmd::Stress { writers, writes }, Some(ledger)) => stress(&ledger, writers, writes).await,
        (Cmd::Backup { out }, _) => {
            if out.exists() {
                anyhow::bail!("{} exists; choose a new file", out.display());
            }
            db.backup_into(&out).await?;
            println!("Backed up to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        (Cmd::Audit(AuditCmd::Prove { index, out, key }), _) => {
            let key = read_key(key.as_deref(), &cli.signing_key)?
                .context("no public key: give --key or keep the signing key's .pub file")?;
            let bundle = audit::proof::prove(&db, index, &key).await?;
            write_durably(&out, serde_json::to_string_pretty(&bundle)?.as_bytes())?;
            println!(
                "Wrote the proof of entry {index} in the tree of {} entries to {}",
                bundle.tree_size,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (Cmd::Audit(AuditCmd::Check { file, key }), _) => {
            audit_check(&file, key.as_deref(), &cli.signing_key)
        }
        (Cmd::Audit(AuditCmd::CheckArchive { files, key }), _) => {
            audit_check_archive(&files, key.as_deref(), &cli.signing_key)
        }
        (Cmd::Audit(AuditCmd::Archive { before, out }), _) => {
            audit_archive(&db, &cli.signing_key, &cli.checkpoint_dir, &before, out).await
        }
        (
            Cmd::Audit(AuditCmd::Verify {
                json,
                key,
                checkpoints,
                from,
            }),
            _,
        ) => {
            let key = key.or_else(|| {
                let default = checkpoint::public_key_path(&cli.signing_key);
                default.exists().then(|| default.display().to_string())
            });
            let checkpoints = checkpoints.or_else(|| {
                cli.checkpoint_dir
                    .exists()
                    .then(|| cli.checkpoint_dir.clone())
            });
            let anchors = anchors(key.as_deref(), checkpoints.as_deref())?;
            audit_verify(&db, anchors, from, json).await
        }
        (
            Cmd::Audit(AuditCmd::List {
                filter,
                limit,
                cursor,
                format,
            }),
            _,
        ) => {
            let q = audit_query(&db, filter, limit, cursor).await?;
            audit_list(&db, &q, format).await
        }
        (_, None) => unreachable!("every writing command has a ledger"),
    };
    db.close().await;
    result
}

/// Who the command line acts as: the person at the terminal, as the system knows them.
fn cli_actor() -> Context {
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Context::new(ActorRef::Automation(format!("command line ({who})")))
}

fn user_fields(
    username: &str,
    name: &str,
    initials: &str,
    group: &str,
    email: Option<&str>,
) -> Fields {
    let v = json!({"username": username, "display_name": name, "initials": initials,
                   "security_group": group, "email": email});
    v.as_object().cloned().unwrap_or_default()
}

async fn add_user(
    ledger: &Ledger,
    fields: Fields,
    password: Option<String>,
) -> anyhow::Result<ExitCode> {
    let generated = password.is_none();
    let password = password.unwrap_or_else(password::generate);
    let out = ledger.create_user(cli_actor(), fields, &password).await?;
    let record = out.record.context("no user was made")?;
    println!(
        "Added {}.",
        RecordKind::User.label(record.id, &record.fields)
    );
    if generated {
        println!("Password (shown once): {password}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn has_users(db: &Db) -> anyhow::Result<bool> {
    Ok(store::records::count(db, RecordKind::User).await? > 0)
}

async fn init(
    ledger: &Ledger,
    username: &str,
    name: &str,
    initials: &str,
) -> anyhow::Result<ExitCode> {
    if has_users(ledger.db()).await? {
        bail!("this studio is already set up: it has users (add more with `keeptrack user add`)");
    }
    add_user(
        ledger,
        user_fields(username, name, initials, "owner", None),
        None,
    )
    .await?;
    println!("Sign in as {username:?} with that password, then change it.");
    Ok(ExitCode::SUCCESS)
}

async fn stress(ledger: &Ledger, writers: usize, writes: usize) -> anyhow::Result<ExitCode> {
    let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (ledger, acks) = (ledger.clone(), acks.clone());
        tasks.spawn(async move {
            for n in 0..writes {
                let fields = json!({"first_name": format!("W{w}"), "last_name": format!("N{n}")});
                let command = crate::ledger::Command::Create {
                    kind: RecordKind::Client,
                    fields: fields.as_object().cloned().unwrap_or_default(),
                };
                let out = ledger.submit(cli_actor(), command).await?;
                let id = out.record.map_or(0, |r| r.id);
                let _ = acks.send(format!("ack {w} {n} {id}"));
            }
            Ok::<_, crate::ledger::Error>(())
        });
    }
    drop(acks);
    let mut stdout = std::io::stdout().lock();
    while let Some(line) = printed.recv().await {
        // Printed only after the commit, and flushed at once: a killed run has printed
        // exactly what was acknowledged.
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the signing key, the exported checkpoints and the archive files live, and how
/// often the retention schedule looks.
struct Keys {
    key: PathBuf,
    dir: PathBuf,
    archive_dir: PathBuf,
    archive_every: Duration,
}

/// The log's signing key, created on first use with the log's origin as its name.
async fn ensure_key(db: &Db, path: &Path) -> anyhow::Result<checkpoint::Signer> {
    if path.exists() {
        return Ok(checkpoint::read_signer(path)?);
    }
    let origin = store::preferences::all(db)
        .await?
        .get("log.origin")
        .cloned()
        .context("the log has no origin yet")?;
    let signer = checkpoint::create_key_files(path, &origin)
        .with_context(|| format!("cannot create the signing key {}", path.display()))?;
    println!(
        "Created the log's signing key {} (keep it out of backups) and its public key {}:\n  {}",
        path.display(),
        checkpoint::public_key_path(path).display(),
        signer.verifier().to_vkey()
    );
    Ok(signer)
}

async fn serve(
    ledger: Ledger,
    url: &str,
    listen: SocketAddr,
    keys: &Keys,
    every: Duration,
    heartbeat: Duration,
) -> anyhow::Result<ExitCode> {
    if !has_users(ledger.db()).await? {
        println!(
            "First run: created {} with an owner account.",
            redact_url(url)
        );
        init(&ledger, "owner", "Studio Owner", "OWN").await?;
    }
    let signer = ensure_key(ledger.db(), &keys.key).await?;
    std::fs::create_dir_all(&keys.archive_dir).with_context(|| {
        format!(
            "cannot create the archive directory {}",
            keys.archive_dir.display()
        )
    })?;
    let verifier = signer.verifier();
    std::fs::create_dir_all(&keys.dir).with_context(|| {
        format!(
            "cannot create the checkpoint directory {}",
            keys.dir.display()
        )
    })?;
    // The writer that signs: one per process, holding the key. The first one ends here,
    // and with it its PostgreSQL connection.
    let db = ledger.db().clone();
    drop(ledger);
    let ledger = Ledger::start_signing(db, Some(signer)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("Keeptrack is serving on http://{}", listener.local_addr()?);
    let start = crate::ledger::Command::Lifecycle { starting: true };
    if let Some(idx) = ledger.submit(Context::system(), start).await?.audit_index {
        tracing::info!(entry = idx, "started");
    }
    let checkpoints = tokio::spawn(checkpoint_loop(
        ledger.clone(),
        keys.dir.clone(),
        every,
        heartbeat,
    ));
    let archives = tokio::spawn(archive_loop(
        ledger.clone(),
        keys.archive_dir.clone(),
        keys.dir.clone(),
        keys.archive_every,
    ));
    let mut state = web::AppState::new(ledger.clone());
    state.verifier = Some(verifier);
    web::serve(listener, state, shutdown_signal()).await?;
    checkpoints.abort();
    archives.abort();
    // A clean stop is on record, and the last checkpoint covers it.
    let stop = crate::ledger::Command::Lifecycle { starting: false };
    ledger.submit(Context::system(), stop).await?;
    let last = ledger
        .submit(Context::system(), crate::ledger::Command::Checkpoint)
        .await?;
    if let Some(note) = last.checkpoint {
        write_checkpoint(&keys.dir, &note);
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM as service managers send it.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Signs a checkpoint when the log has grown since the last one (checked every `every`)
/// and at least every `heartbeat`, and writes each to the checkpoint directory.
async fn checkpoint_loop(ledger: Ledger, dir: PathBuf, every: Duration, heartbeat: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut signed_size: Option<i64> = None;
    let mut signed_at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let size = match store::audit_log::size(ledger.db()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log's size");
                continue;
            }
        };
        // Our own checkpoint entry makes the log one longer than the tree it signed.
        let grew = signed_size.is_none_or(|s| size > s + 1);
        if !grew && signed_at.elapsed() < heartbeat {
            continue;
        }
        match ledger
            .submit(Context::system(), crate::ledger::Command::Checkpoint)
            .await
        {
            Ok(out) => {
                let Some(note) = out.checkpoint else { continue };
                signed_size = Some(write_checkpoint(&dir, &note));
                signed_at = tokio::time::Instant::now();
            }
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
    }
}

/// Applies the retention preference: every `every`, archives the entries older than
/// `audit.retention_days` into files in `dir` (several runs when there are many), and
/// writes each run's checkpoint beside the others.
async fn archive_loop(ledger: Ledger, dir: PathBuf, checkpoints: PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let prefs = match store::preferences::all(ledger.db()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the retention preference");
                continue;
            }
        };
        let key = crate::domain::preference::Preference::RetentionDays.key();
        let Some(days) =
            crate::domain::preference::retention_days(prefs.get(key).map(String::as_str))
        else {
            continue;
        };
        let Ok(before) =
            clock::now().checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        else {
            continue;
        };
        loop {
            let command = crate::ledger::Command::Archive {
                before,
                out: dir.clone(),
            };
            match ledger.submit(Context::system(), command).await {
                Ok(out) => {
                    let Some(done) = out.archived else { break };
                    if let Some(note) = out.checkpoint {
                        write_checkpoint(&checkpoints, &note);
                    }
                    tracing::info!(first = done.first, end = done.end, file = %done.file.display(), "archived");
                    if !done.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "archiving failed");
                    break;
                }
            }
        }
    }
}

/// Writes a checkpoint note as `<size>.checkpoint`; returns its size.
fn write_checkpoint(dir: &Path, note: &str) -> i64 {
    let size = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(0);
    let file = dir.join(format!("{size:012}.checkpoint"));
    if let Err(e) = write_durably(&file, note.as_bytes()) {
        tracing::error!(error = %e, file = %file.display(), "cannot write the checkpoint");
    }
    size
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn audit_check(file: &Path, key: Option<&str>, signing_key: &Path) -> anyhow::Result<ExitCode> {
    let key = match key {
        Some(k) => Some(read_key(Some(k), signing_key)?.context("no key")?),
        None => None,
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    match audit::proof::check(&bytes, key.as_ref()) {
        Ok(p) => {
            if key.is_none() {
                println!("warning: checked with the bundle's own key; give --key to use yours");
            }
            println!(
                "PROVEN: entry {} ({} {} by {}) is in {} as signed at {} entries.",
                p.entry.i,
                p.entry.cat.as_str(),
                p.entry.act.as_str(),
                p.entry.actor.initials,
                p.checkpoint.origin,
                p.checkpoint.size
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("NOT PROVEN: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn audit_archive(
    db: &Db,
    signing_key: &Path,
    checkpoint_dir: &Path,
    before: &str,
    out: PathBuf,
) -> anyhow::Result<ExitCode> {
    let signer = checkpoint::read_signer(signing_key).with_context(|| {
        format!(
            "archiving signs a checkpoint: cannot read the signing key {}",
            signing_key.display()
        )
    })?;
    let tz = store::preferences::all(db)
        .await?
        .get("studio.time_zone")
        .and_then(|n| TimeZone::get(n).ok())
        .unwrap_or_else(TimeZone::system);
    let before = parse_bound(before, &tz, false)?;
    if out.exists() && !out.is_dir() {
        bail!("{} exists; choose a new file", out.display());
    }
    let ledger = Ledger::start_signing(db.clone(), Some(signer)).await?;
    let command = crate::ledger::Command::Archive { before, out };
    let outcome = ledger.submit(cli_actor(), command).await?;
    let Some(done) = outcome.archived else {
        println!("Nothing to archive: every entry before {before} is archived already.");
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(note) = &outcome.checkpoint {
        std::fs::create_dir_all(checkpoint_dir)?;
        write_checkpoint(checkpoint_dir, note);
    }
    println!(
        "Archived entries {} to {} ({} entries) to {}; recorded as entry {}.",
        done.first,
        done.end - 1,
        done.end - done.first,
        done.file.display(),
        outcome.audit_index.unwrap_or_default()
    );
    if done.more {
        println!(
            "More entries are older than {before}: run again to archive the next {}.",
            crate::ledger::MAX_ARCHIVE
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_check_archive(
    files: &[PathBuf],
    key: Option<&str>,
    signing_key: &Path,
) -> anyhow::Result<ExitCode> {
    let key = match key {
        Some(k) => Some(read_key(Some(k), signing_key)?.context("no key")?),
        None => None,
    };
    let mut checked = Vec::new();
    for file in files {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        match audit::archive::check(&bytes, key.as_ref()) {
            Ok(c) => checked.push((file, c)),
            Err(e) => {
                println!("NOT VALID: {}: {e}", file.display());
                return Ok(ExitCode::from(1));
            }
        }
    }
    checked.sort_by_key(|(_, c)| c.first);
    let time = |us: i64| {
        Timestamp::from_microsecond(us).map_or_else(|_| us.to_string(), |t| t.to_string())
    };
    for (file, c) in &checked {
        if c.own_key {
            println!(
                "warning: {} checked with its own key; give --key to use yours",
                file.display()
            );
        }
        println!(
            "ARCHIVE OK: entries {} to {} ({} entries, {} to {}) are in {} as signed at {} entries: {}",
            c.first,
            c.end - 1,
            c.end - c.first,
            time(c.from_ts),
            time(c.to_ts),
            c.checkpoint.origin,
            c.checkpoint.size,
            file.display()
        );
        for i in &c.clock_backwards {
            println!("warning: CLOCK: entry {i} says the clock went backwards");
        }
    }
    let chain: Vec<_> = checked.iter().map(|(_, c)| c.clone()).collect();
    if let Err(e) = audit::archive::check_chain(&chain) {
        println!("NOT VALID: {e}");
        return Ok(ExitCode::from(1));
    }
    if let (Some((_, a)), Some((_, b)), true) = (checked.first(), checked.last(), checked.len() > 1)
    {
        println!(
            "The archives chain into one log: entries {} to {}.",
            a.first,
            b.end - 1
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A public key from a file or the text itself; default: the signing key's .pub file.
fn read_key(key: Option<&str>, signing_key: &Path) -> anyhow::Result<Option<checkpoint::Verifier>> {
    let text = match key {
        Some(k) if Path::new(k).exists() => std::fs::read_to_string(k)?,
        Some(k) => k.to_owned(),
        None => {
            let default = checkpoint::public_key_path(signing_key);
            if !default.exists() {
                return Ok(None);
            }
            std::fs::read_to_string(default)?
        }
    };
    Ok(Some(
        checkpoint::Verifier::from_vkey(&text).context("not a public key")?,
    ))
}

/// Reads the trusted key and checkpoints; a checkpoint the key did not sign is a warning.
fn anchors(
    key: Option<&str>,
    checkpoints: Option<&Path>,
) -> anyhow::Result<audit::verify::Anchors> {
    let mut anchors = audit::verify::Anchors::default();
    let Some(key) = key else {
        if checkpoints.is_some() {
            anchors.warnings.push(
                "checkpoints were given but no key to check them with: they are ignored".into(),
            );
        }
        return Ok(anchors);
    };
    let text = if Path::new(key).exists() {
        std::fs::read_to_string(key)?
    } else {
        key.to_owned()
    };
    let verifier = checkpoint::Verifier::from_vkey(&text)
        .with_context(|| format!("{key} is not a public key"))?;
    if let Some(path) = checkpoints {
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut f: Vec<PathBuf> = std::fs::read_dir(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            f.sort();
            f
        } else {
            vec![path.to_owned()]
        };
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "checkpoint"))
        {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            match verifier.open(&bytes) {
                Ok(c) => anchors.checkpoints.push((file.display().to_string(), c)),
                Err(e) => anchors.warnings.push(format!(
                    "{} is not a checkpoint signed by the key: {e}",
                    file.display()
                )),
            }
        }
    }
    anchors.key = Some(verifier);
    Ok(anchors)
}

async fn run_demo(ledger: &Ledger, plan: demo::Plan) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(plan.commands());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} changes ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let tick = {
        let bar = bar.clone();
        move || bar.inc(1)
    };
    demo::fill(ledger, &plan, clock::now(), tick).await?;
    bar.finish();
    let size = store::audit_log::size(ledger.db()).await?;
    println!(
        "Demo studio ready: {} clients, {} sessions with appointments, invoices and payments; the audit log holds {size} entries.",
        plan.clients, plan.sessions
    );
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(
    db: &Db,
    anchors: audit::verify::Anchors,
    from: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} entries")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = audit::verify::verify_from(db, anchors, from, clock::now(), |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} entries, root {}", report.entries, report.root);
        if report.archived > 0 {
            println!(
                "{} of them archived: their bodies are in archive files (audit check-archive); \
                 their leaf hashes are in the tree.",
                report.archived
            );
        }
        if report.from > 0 {
            println!(
                "Incremental: the log extends the trusted checkpoint of {} entries; \
                 recomputed {} entries from there.",
                report.from, report.recomputed
            );
        }
        match report.findings.first() {
            None => println!("OK: every entry, tree node and the head match the stored bytes."),
            Some(first) => {
                let at = first
                    .index
                    .map_or(String::new(), |i| format!(" at entry {i}"));
                println!("TAMPERED: {:?}{at}: {}", first.damage, first.detail);
                for f in &report.findings[1..] {
                    let at = f.index.map_or(String::new(), |i| format!(" at entry {i}"));
                    println!("  also {:?}{at}: {}", f.damage, f.detail);
                }
            }
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// A date is a whole day in the studio's time zone; anything else must be an instant.
fn parse_bound(s: &str, tz: &TimeZone, end: bool) -> anyhow::Result<Timestamp> {
    if let Ok(date) = s.parse::<jiff::civil::Date>() {
        let day = if end { date.tomorrow()? } else { date };
        return Ok(day.to_zoned_datetime(tz.clone())?.timestamp());
    }
    s.parse::<Timestamp>().with_context(|| {
        format!("{s:?} is neither a date (2018-10-18) nor an instant (2018-10-18T15:00:00Z)")
    })
}

async fn audit_query(
    db: &Db,
    a: FilterArgs,
    limit: i64,
    cursor: Option<String>,
) -> anyhow::Result<audit::Query> {
    let prefs = store::preferences::all(db).await?;
    let tz = prefs
        .get("studio.time_zone")
        .and_then(|n| TimeZone::get(n).ok())
        .unwrap_or_else(TimeZone::system);
    let mut q = audit::Query {
        limit,
        ..Default::default()
    };
    q.from = a
        .from
        .as_deref()
        .map(|s| parse_bound(s, &tz, false))
        .transpose()?;
    q.to =
        a.to.as_deref()
            .map(|s| parse_bound(s, &tz, true))
            .transpose()?;
    if let Some(actor) = a.actor {
        let id = match actor.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => match store::records::find_id(
                db,
                RecordKind::User,
                "username",
                &actor.to_lowercase(),
            )
            .await?
            {
                Some(id) => Some(id),
                None => {
                    store::records::find_id(db, RecordKind::User, "initials", &actor.to_uppercase())
                        .await?
                }
            },
        };
        q.actor_id = Some(id.with_context(|| format!("no user is called {actor:?}"))?);
    }
    if let Some(c) = a.category {
        q.category = Some(
            Category::parse(&c).with_context(|| format!("no audit category is called {c:?}"))?,
        );
    }
    if let Some(x) = a.action {
        q.action = Some(Action::parse(&x).with_context(|| format!("no action is called {x:?}"))?);
    }
    if let Some(r) = a.record {
        let (kind, id) = match r.split_once(':') {
            Some((k, id)) => (
                k,
                Some(
                    id.parse::<i64>()
                        .with_context(|| format!("{id:?} is not a record id"))?,
                ),
            ),
            None => (r.as_str(), None),
        };
        q.record_type = Some(
            RecordKind::parse(kind)
                .with_context(|| format!("no record type is called {kind:?}"))?,
        );
        q.record_id = id;
    }
    if let Some(c) = cursor {
        q.cursor =
            Some(audit::Cursor::parse(&c).context("that cursor is not one this command printed")?);
    }
    Ok(q)
}

async fn audit_list(db: &Db, q: &audit::Query, format: Format) -> anyhow::Result<ExitCode> {
    let page = audit::list(db, q).await?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &page)?;
            writeln!(out)?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:>7}  {:<27}  {:<5}  {:<18}  {:<10}  {:<32}  CHANGES",
                "#", "TIME (UTC)", "WHO", "CATEGORY", "ACTION", "RECORD"
            )?;
            for e in &page.entries {
                writeln!(out, "{}", table_row(e))?;
            }
            if let Some(next) = &page.next {
                writeln!(out, "More: --cursor {next}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table_row(e: &Entry) -> String {
    let time =
        Timestamp::from_microsecond(e.ts).map_or_else(|_| e.ts.to_string(), |t| t.to_string());
    let record = e.rec.as_ref().map_or(String::new(), |r| r.label.clone());
    let changes: Vec<String> = e
        .diff
        .iter()
        .filter(|c| !(c.old.is_null() && c.new.is_null()))
        .map(|c| format!("{}: {} → {}", c.field, c.old, c.new))
        .collect();
    let mut changes = changes.join("; ");
    if let Some(reason) = &e.reason {
        changes.push_str(&format!(" (reason: {reason})"));
    }
    format!(
        "{:>7}  {:<27}  {:<5}  {:<18}  {:<10}  {:<32}  {}",
        e.i,
        time,
        e.actor.initials,
        e.cat.as_str(),
        e.act.as_str(),
        record,
        changes
    )
}
