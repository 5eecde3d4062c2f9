//! Reading the audit log: filtered pages, newest first, continued by a keyset cursor.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::{
    audit::{Action, Category, Entry},
    record::RecordKind,
};
use crate::store::{self, Db, audit_log};

pub mod archive;
pub mod checkpoint;
pub mod export;
pub mod history;
mod links;
pub mod proof;
pub mod scan;
pub mod verify;

pub const MAX_PAGE: i64 = 1000;

#[derive(Clone, Debug, Default)]
pub struct Query {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub actor_id: Option<i64>,
    pub category: Option<Category>,
    pub action: Option<Action>,
    pub record_type: Option<RecordKind>,
    pub record_id: Option<i64>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// Where a page ended: the (time, index) of its last entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub ts: i64,
    pub idx: i64,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (ts, idx) = s.split_once('.')?;
        Some(Self {
            ts: ts.parse().ok()?,
            idx: idx.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.ts, self.idx)
    }
}

/// One page of entries, newest first: parsed ([`list`]) or as stored ([`list_stored`]).
#[derive(Debug, Serialize)]
pub struct Page<E = Entry> {
    pub entries: Vec<E>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// An entry exactly as the log stores it: its canonical bytes, the JSON an integrator can
/// hash to check a proof, served without being parsed and written again.
pub type RawEntry = Box<serde_json::value::RawValue>;

/// A page of entries, parsed.
pub async fn list(db: &Db, q: &Query) -> Result<Page, store::Error> {
    let page = list_stored(db, q).await?;
    let entries = page
        .entries
        .iter()
        .map(|e| {
            Entry::from_bytes(e.get().as_bytes())
                .map_err(|err| store::Error::Corrupt(format!("audit entry {}: {err}", e.get())))
        })
        .collect::<Result<_, _>>()?;
    Ok(Page {
        entries,
        next: page.next,
    })
}

/// A page of entries as stored.
pub async fn list_stored(db: &Db, q: &Query) -> Result<Page<RawEntry>, store::Error> {
    let limit = q.limit.clamp(1, MAX_PAGE);
    let filter = audit_log::Filter {
        from_ts: q.from.map(Timestamp::as_microsecond),
        to_ts: q.to.map(Timestamp::as_microsecond),
        actor_id: q.actor_id,
        category: q.category.map(|c| c.as_str().to_owned()),
        action: q.action.map(|a| a.as_str().to_owned()),
        record_type: q.record_type.map(|k| k.as_str().to_owned()),
        record_id: q.record_id,
        before: q.cursor.map(|c| (c.ts, c.idx)),
        limit: limit + 1,
    };
    let mut rows = audit_log::query(db, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = more
        .then(|| {
            rows.last().map(|r| {
                Cursor {
                    ts: r.ts,
                    idx: r.idx,
                }
                .to_string()
            })
        })
        .flatten();
    let entries = rows.into_iter().map(raw_entry).collect::<Result<_, _>>()?;
    Ok(Page { entries, next })
}

/// The stored bytes as JSON, checked to be JSON (not to be an entry: that is verify's).
pub(crate) fn raw_entry(row: audit_log::StoredEntry) -> Result<RawEntry, store::Error> {
    let corrupt =
        |e: &dyn std::fmt::Display| store::Error::Corrupt(format!("audit entry {}: {e}", row.idx));
    let text = String::from_utf8(row.bytes).map_err(|e| corrupt(&e))?;
    serde_json::value::RawValue::from_string(text).map_err(|e| corrupt(&e))
}
