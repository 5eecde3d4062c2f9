//! A fresh studio per test, on either backend.

use std::sync::atomic::{AtomicU32, Ordering};

use keeptrack::{
    domain::record::{Fields, RecordKind},
    ledger::{Command, Context, Error, Ledger, Outcome},
    store::{self, Db, audit_log, records::StoredRecord},
};
use serde_json::{Value, json};

pub struct TestApp {
    pub ledger: Ledger,
    pub db: Db,
    pub owner: i64,
    pub manager: i64,
    pub staff: i64,
    /// The database's URL, for running the `keeptrack` command against it.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Runs the same test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $crate::helpers::TestApp::sqlite().await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = $crate::helpers::TestApp::postgres().await else {
                    return;
                };
                $body
            }
        }
    };
}

/// `n` clients created by `staff` through `ledger` all at once, so that they commit in a
/// few batches: a log long enough to have stored tree nodes in a second or so.
pub async fn clients_at_once(ledger: &Ledger, staff: i64, n: usize) {
    let writes: Vec<_> = (0..n)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let fields = fields(json!({"last_name": format!("Batch{i}")}));
                let create = Command::Create {
                    kind: RecordKind::Client,
                    fields,
                };
                ledger.submit(Context::user(staff), create).await.unwrap()
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
}

pub fn fields(v: Value) -> Fields {
    v.as_object().cloned().expect("an object")
}

/// A URL for a new, empty database on the backend, or None to skip PostgreSQL.
pub async fn new_database_url(postgres: bool) -> Option<(String, Option<tempfile::TempDir>)> {
    if !postgres {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keeptrack.db").display());
        return Some((url, Some(dir)));
    }
    let Ok(admin) = std::env::var("KEEPTRACK_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("KEEPTRACK_REQUIRE_POSTGRES").is_err(),
            "KEEPTRACK_REQUIRE_POSTGRES is set but KEEPTRACK_TEST_DATABASE_URL is not"
        );
        eprintln!("skipping PostgreSQL: KEEPTRACK_TEST_DATABASE_URL is not set");
        return None;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "kt_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        keeptrack::clock::now().as_microsecond() % 1_000_000
    );
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("reach the test PostgreSQL");
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_abandoned_databases(&pool).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some((format!("{base}/{name}"), None))
}

/// Drops the databases of earlier test runs whose process has ended: each test leaves its
/// database behind (to look into after a failure), and a developer's cluster would
/// otherwise grow by a gigabyte every few runs.
async fn drop_abandoned_databases(pool: &sqlx::PgPool) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'kt\\_test\\_%'")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let proc = std::path::Path::new("/proc");
        let ended =
            proc.join("self").exists() && pid.is_some_and(|p| !proc.join(p.to_string()).exists());
        if ended {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\"");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await;
        }
    }
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::on(false).await.expect("sqlite always runs")
    }

    pub async fn postgres() -> Option<Self> {
        Self::on(true).await
    }

    async fn on(postgres: bool) -> Option<Self> {
        let (url, dir) = new_database_url(postgres).await?;
        Some(Self::at(url, dir).await)
    }

    /// A studio in the database at `url`, with its owner, a manager and a staff member.
    ///
    /// On PostgreSQL it has one read connection, the fewest a server can be given: a read
    /// that waited for a second connection while holding one would time out here.
    pub async fn at(url: String, dir: Option<tempfile::TempDir>) -> Self {
        let db = Db::open_with(&url, 1).await.unwrap();
        let ledger = Ledger::start(db.clone()).await.unwrap();
        let mut app = Self {
            ledger,
            db,
            owner: 0,
            manager: 0,
            staff: 0,
            url,
            _dir: dir,
        };
        app.owner = app.add_user("owner", "Olive Owner", "OO", "owner").await;
        app.manager = app.add_user("mary", "Mary K Hill", "MKH", "manager").await;
        app.staff = app.add_user("sam", "Sam Staff", "SS", "staff").await;
        app
    }

    /// Another fresh studio on the same database server.
    pub async fn same_backend(&self) -> Self {
        let postgres = matches!(self.db, Db::Postgres(_));
        Self::on(postgres).await.expect("the backend is there")
    }

    pub async fn add_user(&self, username: &str, name: &str, initials: &str, group: &str) -> i64 {
        let f = fields(json!({"username": username, "display_name": name,
                              "initials": initials, "security_group": group}));
        self.ledger
            .create_user(Context::system(), f, "correct horse battery")
            .await
            .unwrap()
            .record
            .unwrap()
            .id
    }

    pub async fn submit(&self, ctx: Context, command: Command) -> Result<Outcome, Error> {
        self.ledger.submit(ctx, command).await
    }

    pub async fn create(&self, kind: RecordKind, v: Value) -> StoredRecord {
        self.try_create(kind, v).await.unwrap()
    }

    pub async fn try_create(&self, kind: RecordKind, v: Value) -> Result<StoredRecord, Error> {
        let out = self
            .submit(
                Context::user(self.staff),
                Command::Create {
                    kind,
                    fields: fields(v),
                },
            )
            .await?;
        Ok(out.record.unwrap())
    }

    pub async fn update(&self, kind: RecordKind, id: i64, v: Value) -> Result<Outcome, Error> {
        self.update_by(self.staff, kind, id, v).await
    }

    pub async fn update_by(
        &self,
        actor: i64,
        kind: RecordKind,
        id: i64,
        v: Value,
    ) -> Result<Outcome, Error> {
        self.submit(
            Context::user(actor).with_reason("Requested by the client"),
            Command::Update {
                kind,
                id,
                fields: fields(v),
                expected_version: None,
            },
        )
        .await
    }

    pub async fn get(&self, kind: RecordKind, id: i64) -> StoredRecord {
        store::records::get(&self.db, kind, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// A record's notes as they stand (the latest revision); there must be some.
    pub async fn notes(&self, kind: RecordKind, id: i64) -> store::notes::Revision {
        store::notes::latest(&self.db, kind, id)
            .await
            .unwrap()
            .expect("the record has notes")
    }

    pub async fn log_size(&self) -> i64 {
        audit_log::size(&self.db).await.unwrap()
    }

    /// The newest entries, newest first.
    pub async fn latest(&self, n: i64) -> Vec<keeptrack::domain::audit::Entry> {
        let q = keeptrack::audit::Query {
            limit: n,
            ..Default::default()
        };
        keeptrack::audit::list(&self.db, &q).await.unwrap().entries
    }

    pub async fn list_id(&self, list: &str, name: &str) -> i64 {
        let list = keeptrack::domain::list::ListKind::parse(list).unwrap();
        store::lists::items(&self.db, list)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .id
    }

    pub async fn client(&self, last_name: &str) -> StoredRecord {
        self.create(
            RecordKind::Client,
            json!({"first_name": "Jane", "last_name": last_name,
                                               "email": "jane@example.com"}),
        )
        .await
    }

    pub async fn session(&self, client: i64) -> StoredRecord {
        let ty = self.list_id("session_type", "Family Portrait").await;
        self.create(
            RecordKind::Session,
            json!({"client_id": client, "session_type_id": ty,
                                                "starts_at": "2026-12-05T15:00:00Z"}),
        )
        .await
    }

    pub async fn invoice(&self, client: i64) -> StoredRecord {
        self.create(
            RecordKind::Invoice,
            json!({"client_id": client,
            "lines": [{"item": "8x10 print", "qty": 2, "unit_cents": 2500}]}),
        )
        .await
    }

    pub async fn payment(&self, invoice: i64, cents: i64) -> StoredRecord {
        let method = self.list_id("payment_method", "Cash").await;
        self.create(
            RecordKind::Payment,
            json!({"invoice_id": invoice, "amount_cents": cents,
                                                "payment_method_id": method}),
        )
        .await
    }
}

/// The fields named in an Invalid error.
pub fn invalid_fields(e: &Error) -> Vec<String> {
    match e {
        Error::Invalid(errors) => errors.iter().map(|e| e.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// Runs SQL straight against the database, as an attacker with access would.
pub async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Sqlite(p, _) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .map(|_| ()),
        Db::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Removes the log's guard triggers, as someone with the database's owner rights can.
pub async fn drop_guards(db: &Db) {
    let sql: &[&str] = match db {
        Db::Sqlite(_, _) => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
            "DROP TRIGGER log_head_only_grows",
            "DROP TRIGGER audit_tree_no_update",
            "DROP TRIGGER audit_tree_no_delete",
            "DROP TRIGGER audit_keys_no_update",
            "DROP TRIGGER audit_keys_no_delete",
        ],
        Db::Postgres(_) => &[
            "ALTER TABLE audit_log DISABLE TRIGGER USER",
            "ALTER TABLE log_head DISABLE TRIGGER USER",
            "ALTER TABLE audit_tree DISABLE TRIGGER USER",
            "ALTER TABLE audit_keys DISABLE TRIGGER USER",
        ],
    };
    for s in sql {
        exec(db, s).await;
    }
}

/// How many entries have their keys in `audit_keys`, and how many entries there are.
pub async fn keyed(db: &Db) -> (i64, i64) {
    let sql = "SELECT (SELECT COUNT(*) FROM audit_keys), (SELECT COUNT(*) FROM audit_log)";
    match db {
        Db::Sqlite(p, _) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
        Db::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await.unwrap(),
    }
}

/// Waits for the idle writer to copy every entry's keys.
pub async fn until_all_keyed(db: &Db) {
    for _ in 0..200 {
        let (keys, entries) = keyed(db).await;
        if keys == entries {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "the writer did not copy the keys when idle: {:?}",
        keyed(db).await
    );
}

/// Runs the `keeptrack` command against the database at `url`, in `dir` (where it looks
/// for its signing key and checkpoints).
pub fn run_cli(dir: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keeptrack"))
        .current_dir(dir)
        .args(args)
        .env("KEEPTRACK_DATABASE_URL", url)
        .output()
        .expect("run keeptrack")
}

/// `audit verify` of the whole log now, with no anchors but the database's own.
pub async fn verify_now(db: &Db) -> keeptrack::audit::verify::Report {
    use keeptrack::audit::verify::{Anchors, verify};
    verify(db, Anchors::default(), keeptrack::clock::now(), |_, _| {})
        .await
        .expect("the log can be read")
}
