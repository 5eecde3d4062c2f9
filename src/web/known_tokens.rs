//! API tokens this server has looked up already, with their users and groups, kept on
//! PostgreSQL (where each lookup is a round trip) until anything about who may do what
//! changes, on this server or any other.
//!
//! What is kept is trusted only while nothing has moved since it was looked up: this
//! server's ledger answering a command that may change access (counted before the
//! request that asked for it is answered), or the database's notice that a token, a user
//! or a security group changed (sent when the change commits, whoever made it, and heard
//! on a connection of its own). While that connection is down nothing is kept, and what
//! was kept before it dropped is not trusted again. SQLite has no such notices; there a
//! lookup is a call on the server's own connection, and nothing is kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::ledger::Ledger;
use crate::store::{
    Db,
    auth::{self, TokenRow},
    records::Member,
};

/// How long a token is kept at most, however quiet the notices: a bound on what a
/// notice lost without its connection dropping could cost.
const KEEP: Duration = Duration::from_secs(60);
/// Tokens kept at most; past it the rest are forgotten.
const MOST: usize = 4096;

/// Which changes a lookup had seen: this server's, then the database's notices.
type Seen = (u64, u64);

pub struct KnownTokens {
    tokens: Mutex<HashMap<String, Known>>,
    notices: AtomicU64,
    hearing: AtomicBool,
    answered: AtomicU64,
    /// Dropped with this, which ends the task that hears the notices.
    _gone: tokio::sync::watch::Sender<()>,
}

struct Known {
    token: TokenRow,
    member: Member,
    seen: Seen,
    at: Instant,
}

impl KnownTokens {
    /// Starts hearing `db`'s notices (on PostgreSQL) on a task of its own.
    pub fn hear(db: &Db) -> Arc<Self> {
        let (gone, watch) = tokio::sync::watch::channel(());
        let known = Arc::new(Self {
            tokens: Mutex::default(),
            notices: AtomicU64::new(0),
            hearing: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            _gone: gone,
        });
        if matches!(db, Db::Postgres(_)) {
            tokio::spawn(listen(db.clone(), Arc::downgrade(&known), watch));
        }
        known
    }

    /// What a lookup about to start has seen; pass it to [`KnownTokens::keep`].
    pub fn seen(&self, ledger: &Ledger) -> Seen {
        (ledger.access_changes(), self.notices.load(SeqCst))
    }

    /// The token whose secret hashes to `hash`, if kept and nothing moved since.
    pub fn get(&self, ledger: &Ledger, hash: &str) -> Option<(TokenRow, Member)> {
        if !self.hearing.load(SeqCst) {
            return None;
        }
        let seen = self.seen(ledger);
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let known = tokens
            .get(hash)
            .filter(|k| k.seen == seen && k.at.elapsed() < KEEP)
            .map(|k| (k.token.clone(), k.member.clone()));
        if known.is_some() {
            self.answered.fetch_add(1, SeqCst);
        }
        known
    }

    /// Whether the notices are heard now, and how many requests a kept token answered.
    pub fn stats(&self) -> (bool, u64) {
        (self.hearing.load(SeqCst), self.answered.load(SeqCst))
    }

    /// Keeps a token looked up after `seen`, if it may be used and notices are heard.
    pub fn keep(&self, hash: &str, seen: Seen, token: &TokenRow, member: &Member) {
        if !self.hearing.load(SeqCst) || token.revoked_at.is_some() || !member.active() {
            return;
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= MOST {
            tokens.clear();
        }
        tokens.insert(
            hash.to_owned(),
            Known {
                token: token.clone(),
                member: member.clone(),
                seen,
                at: Instant::now(),
            },
        );
    }

    /// A kept token's use was recorded at `now`, so the next request need not record it.
    pub fn used(&self, hash: &str, now: i64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = tokens.get_mut(hash) {
            k.token.last_used_at = Some(now);
        }
    }

    /// Something may have changed, so nothing kept before is trusted; `hearing` says
    /// whether the notices are heard from now on. The count moves before they are heard
    /// again and after they stop, so nothing looked up while they were not is trusted.
    fn heard(&self, hearing: bool) {
        if hearing {
            self.notices.fetch_add(1, SeqCst);
            self.hearing.store(true, SeqCst);
        } else {
            self.hearing.store(false, SeqCst);
            self.notices.fetch_add(1, SeqCst);
        }
    }
}

/// Hears the notices until `known` is gone: each one, and each time the connection drops
/// or comes back, moves what kept tokens must have seen.
async fn listen(db: Db, known: Weak<KnownTokens>, mut gone: tokio::sync::watch::Receiver<()>) {
    let mut warned = false;
    loop {
        let listener = tokio::select! {
            l = auth::hear_access_changes(&db) => l,
            _ = gone.changed() => return,
        };
        let mut listener = match listener {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(error = %e, "cannot hear changes to access; tokens are looked up every time");
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = gone.changed() => return,
                }
            }
        };
        warned = false;
        match known.upgrade() {
            Some(k) => k.heard(true),
            None => return,
        }
        loop {
            let notice = tokio::select! {
                n = listener.try_recv() => n,
                _ = gone.changed() => return,
            };
            let Some(k) = known.upgrade() else { return };
            match notice {
                Ok(Some(_)) => k.heard(true),
                // The connection dropped: what was missed meanwhile cannot be known.
                Ok(None) | Err(_) => {
                    k.heard(false);
                    break;
                }
            }
        }
    }
}
