//! A record's whole history in one place: its audit entries, status notes and notes
//! revisions merged newest first; and the record as it was at any moment.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::{
    audit::{Action, Entry},
    diff, note,
    preference::Preference,
    record::{Fields, RecordKind},
    stamp::{self, StampFormat},
};
use crate::store::{self, Db, audit_log, history::Shown, notes};

#[derive(Debug, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Item {
    /// A logged change, with its field changes: the entry as stored.
    Audit {
        ts: i64,
        #[serde(skip)]
        index: i64,
        entry: super::RawEntry,
    },
    /// A line the system wrote.
    StatusNote { ts: i64, note: notes::StatusNote },
    /// A notes save, with what it added and removed.
    Notes {
        ts: i64,
        revision: i64,
        author: notes::Author,
        #[serde(flatten)]
        change: note::Change,
    },
}

impl Item {
    /// Newest first: by time, then entry before status notes before notes (the order a
    /// command writes them in), then by number.
    fn key(&self) -> (i64, u8, i64) {
        match self {
            Self::Audit { ts, index, .. } => (*ts, 2, *index),
            Self::StatusNote { ts, note } => (*ts, 1, note.id),
            Self::Notes { ts, revision, .. } => (*ts, 0, *revision),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub items: Vec<Item>,
    /// Pass back as `cursor` for the next page; absent on the last one.
    pub next: Option<String>,
}

fn parse_cursor(s: &str) -> Option<(i64, u8, i64)> {
    let mut parts = s.split('.');
    let c = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(c)
}

/// The keyset bound, for one source of rank `rank`, that keeps only items after `c`.
fn bound(rank: u8, c: Option<(i64, u8, i64)>) -> Option<(i64, i64)> {
    let (ts, crank, key) = c?;
    Some(match rank.cmp(&crank) {
        std::cmp::Ordering::Less => (ts, i64::MAX),
        std::cmp::Ordering::Equal => (ts, key),
        std::cmp::Ordering::Greater => (ts, i64::MIN),
    })
}

/// One page of a record's history. `cursor` is what the previous page returned.
pub async fn timeline(
    db: &Db,
    kind: RecordKind,
    id: i64,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Timeline, store::Error> {
    let limit = limit.clamp(1, super::MAX_PAGE);
    let c = match cursor {
        Some(s) => Some(parse_cursor(s).ok_or_else(|| store::Error::Corrupt("bad cursor".into()))?),
        None => None,
    };
    let bounds = store::history::Bounds {
        entries: bound(2, c),
        status_notes: bound(1, c),
        revisions: bound(0, c),
    };
    // One more than the page shows, to know whether there is a next.
    let page = store::history::page(db, kind, id, bounds, limit + 1).await?;
    let mut items = Vec::new();
    for row in page.entries {
        items.push(Item::Audit {
            ts: row.ts,
            index: row.idx,
            entry: super::raw_entry(row)?,
        });
    }
    for n in page.status_notes {
        items.push(Item::StatusNote { ts: n.ts, note: n });
    }
    for r in page.revisions {
        items.push(Item::Notes {
            ts: r.ts,
            revision: r.revision,
            change: match r.shown {
                Shown::Change(c) => c,
                Shown::Text { text, before } => note::change(&before, &text),
            },
            author: r.author,
        });
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.key()));
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next = more
        .then(|| {
            items.last().map(|i| {
                let (ts, rank, key) = i.key();
                format!("{ts}.{rank}.{key}")
            })
        })
        .flatten();
    Ok(Timeline { items, next })
}

/// A record as the log says it was at `at`.
#[derive(Debug, PartialEq, Serialize)]
pub struct AsOf {
    pub fields: Fields,
    pub deleted: bool,
    /// The entry the state was rebuilt up to.
    pub last_index: i64,
}

/// Rebuilds a record from its logged changes up to and including `at`. `None` when the
/// log holds no creation of it by then. Changes made while its category's logging was
/// off are not in the log, so neither are they here.
pub async fn as_of(
    db: &Db,
    kind: RecordKind,
    id: i64,
    at: Timestamp,
) -> Result<Option<AsOf>, store::Error> {
    let mut entries = Vec::new();
    let mut filter = audit_log::Filter {
        record_type: Some(kind.as_str().to_owned()),
        record_id: Some(id),
        to_ts: Some(at.as_microsecond().saturating_add(1)),
        limit: super::MAX_PAGE,
        ..Default::default()
    };
    loop {
        let rows = audit_log::query(db, &filter).await?;
        let last = rows.last().map(|r| (r.ts, r.idx));
        let full = rows.len() as i64 == filter.limit;
        entries.extend(rows);
        match (full, last) {
            (true, Some(last)) => filter.before = Some(last),
            _ => break,
        }
    }
    let mut state: Option<AsOf> = None;
    for row in entries.iter().rev() {
        let entry = Entry::from_bytes(&row.bytes)
            .map_err(|e| store::Error::Corrupt(format!("audit entry {}: {e}", row.idx)))?;
        let s = match (&mut state, entry.act) {
            (None, Action::Create) => state.insert(AsOf {
                fields: Fields::new(),
                deleted: false,
                last_index: entry.i,
            }),
            (None, _) => continue,
            (Some(s), _) => s,
        };
        diff::apply(&mut s.fields, &entry.diff);
        match entry.act {
            Action::Delete => s.deleted = true,
            Action::Restore => s.deleted = false,
            _ => {}
        }
        s.last_index = entry.i;
    }
    Ok(state)
}

/// The stamp CTRL+T inserts for a user now: the server's clock, the studio's time zone
/// and stamp format, the user's initials.
pub async fn stamp_for(
    db: &Db,
    user_id: i64,
    now: Timestamp,
) -> Result<Option<String>, store::Error> {
    let Some(user) = store::records::get(db, RecordKind::User, user_id).await? else {
        return Ok(None);
    };
    let prefs = store::preferences::all(db).await?;
    let tz = prefs
        .get(Preference::TimeZone.key())
        .and_then(|n| jiff::tz::TimeZone::get(n).ok())
        .unwrap_or_else(jiff::tz::TimeZone::system);
    let format = prefs
        .get(Preference::StampFormat.key())
        .and_then(|f| StampFormat::parse(f))
        .unwrap_or_default();
    let initials = user.fields["initials"].as_str().unwrap_or_default();
    Ok(Some(stamp::stamp(now, &tz, initials, format)))
}
