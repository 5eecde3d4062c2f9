//! The `keeptrack` command as a person runs it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Output, Stdio},
};

use serde_json::Value;

use crate::helpers::new_database_url;

/// Each studio's working directory, where its signing key and checkpoints go.
pub(crate) fn workdir(url: &str) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    let dir = std::env::temp_dir().join(format!("keeptrack-cli-{:016x}", h.finish()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn keeptrack(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keeptrack"))
        .current_dir(workdir(url))
        .args(args)
        .env("KEEPTRACK_DATABASE_URL", url)
        .env_remove("KEEPTRACK_LISTEN")
        .output()
        .expect("run keeptrack")
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = keeptrack(url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(url: &str, args: &[&str]) -> String {
    let out = keeptrack(url, args);
    assert_eq!(out.status.code(), Some(2), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

async fn init_user_demo_audit(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let out = ok(&url, &["init"]);
    assert!(out.contains("Password (shown once): "), "{out}");
    assert!(refused(&url, &["init"]).contains("already set up"));

    let out = ok(
        &url,
        &[
            "user",
            "add",
            "--username",
            "mary",
            "--name",
            "Mary K Hill",
            "--initials",
            "mkh",
            "--group",
            "manager",
        ],
    );
    assert!(out.starts_with("Added User MKH (Mary K Hill)."), "{out}");
    let err = refused(
        &url,
        &[
            "user",
            "add",
            "--username",
            "mary2",
            "--name",
            "M",
            "--initials",
            "MKH",
        ],
    );
    assert!(err.contains("initials"), "{err}");

    let out = ok(&url, &["demo", "--clients", "20", "--sessions", "30"]);
    assert!(
        out.contains("Demo studio ready: 20 clients, 30 sessions"),
        "{out}"
    );
    assert!(refused(&url, &["demo", "--clients", "1", "--sessions", "1"]).contains("empty studio"));

    let page: Value = serde_json::from_str(&ok(
        &url,
        &[
            "audit",
            "list",
            "--category",
            "clients",
            "--limit",
            "5",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(entries.iter().all(|e| e["cat"] == "clients"));
    let next = page["next"].as_str().unwrap();
    let page2: Value = serde_json::from_str(&ok(
        &url,
        &[
            "audit",
            "list",
            "--category",
            "clients",
            "--limit",
            "5",
            "--format",
            "json",
            "--cursor",
            next,
        ],
    ))
    .unwrap();
    assert!(page2["entries"][0]["i"].as_i64() < entries[4]["i"].as_i64());

    let page: Value = serde_json::from_str(&ok(
        &url,
        &["audit", "list", "--record", "client:1", "--format", "json"],
    ))
    .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["rec"]["id"] == 1 && e["rec"]["type"] == "client")
    );

    let today = keeptrack::clock::now().to_string()[..10].to_owned();
    let table = ok(
        &url,
        &[
            "audit",
            "list",
            "--actor",
            "owner",
            "--from",
            "2020-01-01",
            "--to",
            &today,
        ],
    );
    assert!(table.lines().next().unwrap().contains("WHO"));
    let table = ok(&url, &["audit", "list", "--action", "install"]);
    assert!(
        table.contains("SPSA") && table.contains("install"),
        "{table}"
    );

    assert!(
        refused(&url, &["audit", "list", "--category", "nonsense"]).contains("no audit category")
    );
    assert!(refused(&url, &["audit", "list", "--actor", "nobody"]).contains("no user"));
    assert!(refused(&url, &["audit", "list", "--from", "last week"]).contains("neither a date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_user_demo_audit_sqlite() {
    init_user_demo_audit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_user_demo_audit_postgres() {
    init_user_demo_audit(true).await;
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", path, "", None);
    (status, body)
}

/// The status of a request the server refuses before reading all of it. It answers and
/// closes while the client still writes, and the reset that follows can take its answer
/// with it, so the client tries again a few times before it calls the answer lost.
fn refused_status(addr: &str, headers: &str) -> u16 {
    for _ in 0..5 {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let _ = write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n"
        );
        let mut response = String::new();
        if stream.read_to_string(&mut response).is_ok() && response.len() >= 12 {
            return response[9..12].parse().unwrap();
        }
    }
    panic!("no answer in 5 tries")
}

/// One HTTP/1.1 request over a real socket: status, head, body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body_head = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}{body_head}\r\n{}",
        body.unwrap_or("")
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// A running `keeptrack serve`, stopped when dropped.
pub(crate) struct Server {
    child: Child,
    addr: String,
    /// What it printed before its address.
    said: String,
}

impl Server {
    fn start(url: &str) -> Self {
        Self::start_with(url, &[])
    }

    pub(crate) fn start_with(url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keeptrack"))
            .current_dir(workdir(url))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("KEEPTRACK_DATABASE_URL", url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut said = Vec::new();
        let addr = loop {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(addr) = line.strip_prefix("Keeptrack is serving on http://") {
                break addr.to_owned();
            }
            said.push(line);
        };
        Self {
            child,
            addr,
            said: said.join("\n"),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let (addr, path) = (self.addr.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || http_get(&addr, &path))
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

async fn first_serve_creates_the_studio(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let server = Server::start(&url);
    assert!(server.said.contains("First run"), "{}", server.said);
    assert!(
        server.said.contains("Password (shown once): "),
        "{}",
        server.said
    );
    assert!(
        server.said.contains("Sign in as \"owner\""),
        "{}",
        server.said
    );
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/api/v1/users/1").await;
    assert_eq!(status, 401, "{body}");
    // Sign in with the password it printed, over a real socket.
    let password = server
        .said
        .split("Password (shown once): ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let sign_in = format!(r#"{{"username": "owner", "password": "{password}"}}"#);
        let (status, head, body) = http(&addr, "POST", "/api/v1/session", "", Some(&sign_in));
        assert_eq!(status, 201, "{body}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        // A client that never finishes its headers is cut off.
        let started = std::time::Instant::now();
        let mut slow = std::net::TcpStream::connect(&addr).unwrap();
        slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(slow, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        let waited = started.elapsed().as_secs();
        assert!((9..20).contains(&waited), "cut off after {waited} s");
        // Oversized headers are refused before any handler runs.
        let huge = format!("X-Padding: {}\r\n", "a".repeat(1024 * 1024));
        assert_eq!(refused_status(&addr, &huge), 431);
        let (status, _, body) = http(
            &addr,
            "GET",
            "/api/v1/users/1",
            &format!("Cookie: {cookie}\r\n"),
            None,
        );
        (status, body)
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"initials\":\"OWN\""), "{body}");
    assert!(!body.contains("password_hash"), "{body}");
    // SIGTERM stops it cleanly: a stop entry, and a last checkpoint covering it.
    let pid = server.child.id().to_string();
    let mut server = server;
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // A second start finds the studio set up and says nothing of a first run; it logs
    // that the previous run ended cleanly. Then a kill -9, and the next start says not.
    let again = Server::start(&url);
    assert!(!again.said.contains("First run"), "{}", again.said);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(again);
    let third = Server::start(&url);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(third);
    let page: Value = serde_json::from_str(&ok(
        &url,
        &["audit", "list", "--action", "start", "--format", "json"],
    ))
    .unwrap();
    let previous: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["diff"][0]["new"].as_str().unwrap())
        .collect();
    assert_eq!(previous, ["unclean", "clean", "none"]);
    let stops: Value = serde_json::from_str(&ok(
        &url,
        &["audit", "list", "--action", "stop", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(stops["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_serve_creates_the_studio_sqlite() {
    first_serve_creates_the_studio(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_serve_creates_the_studio_postgres() {
    first_serve_creates_the_studio(true).await;
}

/// `audit verify` exits 1 and names the damage when the log was edited behind its back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_tampering() {
    let Some((url, _dir)) = new_database_url(false).await else {
        return;
    };
    ok(&url, &["init"]);
    ok(
        &url,
        &[
            "user",
            "add",
            "--username",
            "mary",
            "--name",
            "Mary K Hill",
            "--initials",
            "MKH",
        ],
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET action = 'delete' WHERE idx = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = keeptrack(&url, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("TAMPERED: Edited at entry 1: the action column differs"),
        "{text}"
    );
    assert!(text.contains("guard trigger audit_log_no_update"), "{text}");
}

/// The server signs checkpoints into the checkpoint directory; verify trusts them (and
/// the key's public half) from outside the database, and then has no warnings.
async fn serve_signs_checkpoints(postgres: bool) {
    let Some((url, _dir)) = new_database_url(postgres).await else {
        return;
    };
    let server = Server::start_with(&url, &["--checkpoint-every", "1"]);
    assert!(server.said.contains("signing key"), "{}", server.said);
    let dir = workdir(&url).join("checkpoints");
    let mut found = Vec::new();
    for _ in 0..100 {
        found = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).collect())
            .unwrap_or_default();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(server);
    assert!(!found.is_empty(), "no checkpoint was written");
    let out = keeptrack(&url, &["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("OK: every entry"), "{text}");
    // An offline proof of the first entry, checked with no database.
    let bundle = workdir(&url).join("entry0.json");
    ok(
        &url,
        &["audit", "prove", "0", "--out", bundle.to_str().unwrap()],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keeptrack"))
        .args(["audit", "check", bundle.to_str().unwrap(), "--key"])
        .arg(workdir(&url).join("keeptrack.key.pub"))
        .env(
            "KEEPTRACK_DATABASE_URL",
            "sqlite:///nonexistent/dir/never.db",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // No database is needed: checking must not even try to open one.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("PROVEN: entry 0 (system install by SPSA)"),
        "{text}"
    );
    let altered = std::fs::read_to_string(&bundle)
        .unwrap()
        .replace("install", "instal1");
    std::fs::write(&bundle, altered).unwrap();
    let out = keeptrack(&url, &["audit", "check", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NOT PROVEN"));
    // A checkpoint signed by someone else is not trusted.
    std::fs::write(
        dir.join("999999999999.checkpoint"),
        "forged\n5\nAAAA\n\n— forged AAAA\n",
    )
    .unwrap();
    let text = String::from_utf8(keeptrack(&url, &["audit", "verify"]).stdout).unwrap();
    assert!(
        text.contains("is not a checkpoint signed by the key"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_checkpoints_sqlite() {
    serve_signs_checkpoints(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_checkpoints_postgres() {
    serve_signs_checkpoints(true).await;
}

/// How many connections to its database other sessions than this one hold.
async fn connections_to(url: &str) -> i64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// `--database-pool` bounds what a server asks of PostgreSQL however many requests
/// come at once: that many connections for reads, one for the writer and one that hears
/// changes to access.
async fn database_pool_bounds_connections(pool: &str) -> i64 {
    let (url, _dir) = new_database_url(true).await.expect("PostgreSQL runs");
    let server = Server::start_with(&url, &["--database-pool", pool]);
    let readers: Vec<_> = (0..24)
        .map(|_| {
            let addr = server.addr.clone();
            tokio::task::spawn_blocking(move || http_get(&addr, "/readyz").0)
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 200);
    }
    // The first-run writer's connection closes as it ends, which PostgreSQL may still be
    // showing for a moment; the readers' stay open while idle (ten minutes).
    let mut held = connections_to(&url).await;
    for _ in 0..50 {
        if held <= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        held = connections_to(&url).await;
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_pool_bounds_connections_postgres() {
    if new_database_url(true).await.is_none() {
        return;
    }
    assert_eq!(database_pool_bounds_connections("1").await, 3);
    let url = new_database_url(false).await.unwrap().0;
    let said = refused(&url, &["--database-pool", "0", "audit", "list"]);
    assert!(said.contains("--database-pool"), "{said}");
}
