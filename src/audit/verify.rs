//! `audit verify`: recomputes the log from its stored bytes and names the first damage.
//! Leaves from the bytes, the tree from the leaves, the head from the tree; the indexed
//! columns against the bytes, the record chains against the columns; indices gapless;
//! the guard rails in place.

use std::collections::BTreeMap;

use serde::Serialize;

use super::checkpoint::{Checkpoint, Verifier};
use super::links::Links;
use super::scan::{self, Facts};
use crate::domain::{
    audit::{Action, Entry, leaf_hash},
    merkle::{Frontier, Hash},
};
use crate::store::{
    self, Db, audit_log,
    log_reader::{LogReader, RowRef},
};

/// The kinds of damage, as integrity.md names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Damage {
    /// An entry's bytes, a column or a tree node differs from what was appended.
    Edited,
    /// An index is absent.
    Missing,
    /// An entry sits at an index other than its own.
    Reordered,
    /// An entry that does not belong to this log.
    Inserted,
    /// Entries the head or a checkpoint promises are gone.
    Truncated,
    /// The tree or head was recomputed to hide a change.
    Rewritten,
    /// The key signed two logs that cannot both be true: two trusted checkpoints with no
    /// consistency between them (equivocation, or a stolen key used to re-sign a rewrite).
    SplitView,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub damage: Damage,
    pub index: Option<i64>,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub entries: i64,
    /// Where recomputing began: 0, or the size of the trusted checkpoint given as
    /// `--from`, whose tree was taken as verified.
    pub from: i64,
    /// The entries recomputed from their bytes this run.
    pub recomputed: i64,
    /// Of those, the archived ones: their bodies are in archive files, and their stored
    /// leaf hashes (still in the tree) stood in for the bytes.
    pub archived: i64,
    /// The root recomputed from the bytes, hex.
    pub root: String,
    /// The first damage found and every other one after it.
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
}

impl Report {
    /// 0 ok, 1 tampered, 3 warnings (2, could not verify, is the caller's).
    pub fn exit_code(&self) -> u8 {
        if !self.findings.is_empty() {
            1
        } else if !self.warnings.is_empty() {
            3
        } else {
            0
        }
    }
}

/// The triggers that keep the log append-only; a missing one is a warning.
const GUARDS: [&str; 5] = [
    "audit_log_no_update",
    "audit_keys_no_update",
    "audit_tree",
    "log_head_only_grows",
    "audit_archive",
];

const PAGE: i64 = 5000;

/// Pages read and checked ahead of the walk: enough to keep both cores busy.
const AHEAD: usize = 3;

/// A checkpoint older than this (twice the 15-minute heartbeat) means signing stopped.
pub const STALE_AFTER_SECS: i64 = 2 * 15 * 60;

/// What verify trusts, all from outside the database: the log's public key and the
/// checkpoints kept off the machine.
#[derive(Default)]
pub struct Anchors {
    pub key: Option<Verifier>,
    /// Checkpoints whose signatures were already checked, with where each came from.
    pub checkpoints: Vec<(String, Checkpoint)>,
    /// Problems met while reading them (unreadable files, wrong signatures).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "no trusted checkpoint has {0} entries: --from takes the size of one (from --checkpoints, \
         or stored in the database and signed by --key)"
    )]
    NoCheckpoint(u64),
}

/// Verifies the whole log.
pub async fn verify(
    db: &Db,
    anchors: Anchors,
    now: jiff::Timestamp,
    progress: impl Fn(u64, u64),
) -> Result<Report, VerifyError> {
    verify_from(db, anchors, None, now, progress).await
}

/// Verifies the log, or with `from = Some(n)` only what follows the trusted checkpoint of
/// `n` entries: the stored tree must still have that checkpoint's root at `n` (so the
/// head's tree extends it), and only entries `n..` are recomputed from their bytes.
/// Trusted checkpoints smaller than `n` are taken as checked by the run that trusted `n`.
pub async fn verify_from(
    db: &Db,
    anchors: Anchors,
    from: Option<u64>,
    now: jiff::Timestamp,
    progress: impl Fn(u64, u64),
) -> Result<Report, VerifyError> {
    let (head_size, head_root) = audit_log::head(db).await?;
    let mut findings = Vec::new();
    let mut warnings = anchors.warnings;
    let mut trusted = anchors.checkpoints;
    // The database's own checkpoints count only if the trusted key signed them.
    if let Some(key) = &anchors.key {
        for (size, _, note) in audit_log::checkpoints(db, 10_000).await? {
            match key.open(note.as_bytes()) {
                Ok(c) => trusted.push((format!("the database's checkpoint of {size}"), c)),
                Err(e) => findings.push(Finding {
                    damage: Damage::Rewritten,
                    index: None,
                    detail: format!("the database's checkpoint of {size} entries fails: {e}"),
                }),
            }
        }
    }
    let mut roots_at: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut times_at: BTreeMap<u64, i64> = BTreeMap::new();
    let wanted: std::collections::BTreeSet<u64> = trusted.iter().map(|(_, c)| c.size).collect();
    let mut frontier = Frontier::new();
    let mut expected: i64 = 0;
    let mut origin: Option<String> = None;
    let mut last_ts = i64::MIN;
    let start = from.unwrap_or(0);
    if start > 0 {
        let (_, trusted_start) = trusted
            .iter()
            .find(|(_, c)| c.size == start)
            .ok_or(VerifyError::NoCheckpoint(start))?;
        match resume(db, trusted_start, head_size).await? {
            Ok(resumed) => frontier = resumed,
            Err(finding) => {
                findings.push(finding);
                return Ok(finish(findings, warnings, head_size, 0, &frontier));
            }
        }
        roots_at.insert(start, trusted_start.root);
        origin = Some(trusted_start.origin.clone());
        expected = i64::try_from(start).unwrap_or(i64::MAX);
    }
    let from_idx = expected;
    let archived_below = archive_bound(db, head_size, &mut findings).await?;
    let mut archived = 0;
    let mut links = Links::new(expected);
    let mut find = |damage, index: Option<i64>, detail: String| {
        findings.push(Finding {
            damage,
            index,
            detail,
        });
    };
    // What the head vouched for when we began; later appends are checked by count. Pages
    // are read and their entries checked on blocking threads, several ahead; the walk
    // below, in index order, is what depends on the order.
    let reader = LogReader::new(db);
    let mut starts = (expected..head_size).step_by(usize::try_from(PAGE).unwrap_or(1));
    let read = |from: i64| {
        let reader = reader.clone();
        tokio::spawn(async move {
            let to = head_size.min(from.saturating_add(PAGE));
            reader.page(from, to, PAGE, check).await
        })
    };
    let mut ahead: std::collections::VecDeque<_> = starts.by_ref().take(AHEAD).map(read).collect();
    while let Some(next) = ahead.pop_front() {
        // Nothing aborts the read, so it ends or panics; a panic goes on here.
        let (checks, nodes) = next
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        ahead.extend(starts.next().map(read));
        let stored = PageNodes::new(nodes);
        for checked in checks {
            if checked.idx != expected {
                find(
                    Damage::Missing,
                    Some(expected),
                    format!("entries {expected} to {} are missing", checked.idx - 1),
                );
                let mut report = finish(findings, warnings, expected, from_idx, &frontier);
                report.archived = archived;
                return Ok(report);
            }
            let idx = checked.idx;
            if checked.archived {
                // An archived entry: its bytes are in an archive file; the tree still
                // holds its leaf hash, which must be the stored one.
                if idx < archived_below {
                    archived += 1;
                } else {
                    find(
                        Damage::Edited,
                        Some(idx),
                        "the entry's body is gone, and no archive run covers it".into(),
                    );
                }
            }
            let leaf = checked.leaf.unwrap_or_else(|| {
                find(
                    Damage::Edited,
                    Some(idx),
                    "the stored leaf hash is not 32 bytes".into(),
                );
                [0; 32]
            });
            if checked.leaf_differs {
                find(
                    Damage::Edited,
                    Some(idx),
                    "the stored leaf hash does not match the entry's bytes".into(),
                );
            }
            match checked.entry {
                Err(_) if checked.archived => {}
                Err(e) => find(
                    Damage::Edited,
                    Some(idx),
                    format!("the bytes are not an entry: {e}"),
                ),
                Ok(entry) => {
                    if !checked.canonical {
                        find(
                            Damage::Edited,
                            Some(idx),
                            "the bytes are not in canonical form".into(),
                        );
                    }
                    if entry.i != idx {
                        find(
                            Damage::Reordered,
                            Some(idx),
                            format!("the entry at {idx} says it is entry {}", entry.i),
                        );
                    }
                    match &origin {
                        None => origin = Some(entry.log.clone()),
                        Some(o) if *o != entry.log => find(
                            Damage::Inserted,
                            Some(idx),
                            format!("the entry belongs to log {:?}, not {o:?}", entry.log),
                        ),
                        Some(_) => {}
                    }
                    if let Some(column) = checked.column {
                        find(
                            Damage::Edited,
                            Some(idx),
                            format!("the {column} column differs from the entry's bytes"),
                        );
                    }
                    if entry.ts < last_ts {
                        warnings.push(format!("entry {idx} is timed before the one before it"));
                    }
                    last_ts = entry.ts;
                    warnings.extend(entry.clock);
                    let size = u64::try_from(idx + 1).unwrap_or(0);
                    if entry.act == Action::Checkpoint && wanted.contains(&size) {
                        times_at.insert(size, entry.ts);
                    }
                }
            }
            let record = checked.record.as_ref().map(|(k, i)| (k.as_str(), *i));
            if let Some(wrong) = links.check(idx, record, checked.prev) {
                find(
                    Damage::Edited,
                    Some(idx),
                    format!("its record link: {wrong}"),
                );
            }
            // Level 0 is the stored leaf hash, checked above. The levels under
            // `LOWEST_STORED` are computed from the leaves, though a log written before
            // they were may still hold some: those are checked like the rest.
            for (level, index, hash) in frontier.push(leaf).into_iter().filter(|n| n.0 > 0) {
                match stored.get(level, index) {
                    Some(h) if *h == hash => {}
                    None if level < audit_log::LOWEST_STORED => {}
                    Some(_) => find(
                        Damage::Rewritten,
                        Some(idx),
                        format!("tree node {level}/{index} does not match the entries under it"),
                    ),
                    None => find(
                        Damage::Missing,
                        Some(idx),
                        format!("tree node {level}/{index} is missing"),
                    ),
                }
            }
            expected += 1;
            let size = u64::try_from(expected).unwrap_or(0);
            if wanted.contains(&size) {
                roots_at.insert(size, frontier.root());
            }
        }
        progress(
            u64::try_from(expected).unwrap_or(0),
            u64::try_from(head_size).unwrap_or(0),
        );
    }
    let (size_now, beyond) = audit_log::size_and_count_from(db, head_size).await?;
    if expected < head_size {
        find(
            Damage::Truncated,
            Some(expected),
            format!("the head says {head_size} entries but only {expected} are stored"),
        );
    } else if beyond != size_now - head_size {
        find(
            Damage::Inserted,
            Some(head_size),
            format!(
                "{beyond} entries stand beyond entry {head_size}, where the head accounts for {}",
                size_now - head_size
            ),
        );
    } else if expected > 0 && head_root.as_deref() != Some(frontier.root().as_slice()) {
        find(
            Damage::Rewritten,
            None,
            "the head's root is not the root of the stored entries".into(),
        );
    }
    // History walks the record chains: a wrong link or head would hide entries from it.
    let targets: Vec<i64> = links.before().map(|(_, prev)| prev).collect();
    for (idx, wrong) in links.foreign(&audit_log::records_of(db, &targets).await?) {
        find(
            Damage::Edited,
            Some(idx),
            format!("its record link: {wrong}"),
        );
    }
    for wrong in links.heads(&audit_log::heads(db).await?, expected) {
        find(Damage::Edited, None, wrong);
    }
    // The query keys are copies of the columns checked above: a missing or changed one
    // would hide its entry from queries, or show it where its bytes do not say.
    let (keys, keyed_end, wrong) = audit_log::keys_check(db, from_idx, expected, 10).await?;
    if keys != keyed_end {
        find(
            Damage::Missing,
            None,
            format!(
                "the query keys of {} entries below entry {keyed_end} are missing: queries \
                 would not show those entries",
                keyed_end - keys
            ),
        );
    }
    for idx in wrong {
        find(
            Damage::Edited,
            Some(idx),
            "the entry's query keys differ from its columns (or it has no entry): queries \
             would show it where its bytes do not say"
                .into(),
        );
    }
    let stored = u64::try_from(expected).unwrap_or(0);
    let mut origin_seen = origin.clone();
    trusted.retain(|(source, c)| {
        let ours = origin_seen.get_or_insert_with(|| c.origin.clone()) == &c.origin;
        if !ours {
            warnings.push(format!("{source} is for another log ({:?})", c.origin));
        }
        ours
    });
    findings.extend(split_views(&trusted, &roots_at));
    let mut find = |damage, index: Option<i64>, detail: String| {
        findings.push(Finding {
            damage,
            index,
            detail,
        });
    };
    for (source, c) in &trusted {
        if c.size < start {
            continue;
        }
        if c.size > stored {
            find(
                Damage::Truncated,
                Some(expected),
                format!(
                    "{source} vouches for {} entries; only {stored} are stored",
                    c.size
                ),
            );
        } else if c.size > 0 && roots_at.get(&c.size) != Some(&c.root) {
            find(
                Damage::Rewritten,
                Some(i64::try_from(c.size).unwrap_or(0) - 1),
                format!(
                    "the first {} entries are not the ones {source} vouches for",
                    c.size
                ),
            );
        }
    }
    let newest = trusted.iter().map(|(_, c)| c.size).max();
    match newest {
        None => warnings.push(
            "UNANCHORED: no signed checkpoint from outside the database vouches for this log; \
             it is consistent with itself only"
                .into(),
        ),
        Some(size) => {
            let age = times_at.get(&size).map(|ts| now.as_microsecond() - ts);
            if age.is_some_and(|a| a > STALE_AFTER_SECS * 1_000_000) {
                warnings.push(format!(
                    "STALE: the newest checkpoint ({size} entries) is older than {} minutes",
                    STALE_AFTER_SECS / 60
                ));
            }
        }
    }
    let triggers = audit_log::guard_triggers(db).await?;
    for guard in GUARDS {
        if !triggers.iter().any(|t| t.starts_with(guard)) {
            warnings.push(format!("the guard trigger {guard}* is missing or disabled"));
        }
    }
    let mut report = finish(findings, warnings, expected, from_idx, &frontier);
    report.archived = archived;
    Ok(report)
}

/// Below which index entries may be archived: what the newest `archive` entry says (its
/// bytes are checked with the rest when the scan reaches it; it is never archived itself,
/// as it stands after what it archives). The archive table must agree.
async fn archive_bound(
    db: &Db,
    head_size: i64,
    findings: &mut Vec<Finding>,
) -> Result<i64, store::Error> {
    let said = audit_log::newest_archive_entry(db, head_size)
        .await?
        .map(|(idx, bytes)| {
            let to = Entry::from_bytes(&bytes)
                .ok()
                .and_then(|e| e.diff.into_iter().find(|c| c.field == "to"))
                .and_then(|c| c.new.as_i64());
            (idx, to.unwrap_or(0))
        });
    let runs = audit_log::archive_runs(db).await?;
    let recorded = runs
        .iter()
        .filter(|r| r.entry_idx < head_size)
        .max_by_key(|r| r.entry_idx)
        .map(|r| (r.entry_idx, r.to_idx));
    if said != recorded {
        let bound = |b: Option<(i64, i64)>| {
            b.map_or("none".into(), |(i, to)| {
                format!("entries below {to} (entry {i})")
            })
        };
        findings.push(Finding {
            damage: Damage::Edited,
            index: said.map(|(i, _)| i),
            detail: format!(
                "the log's newest archive entry archives {}, the archive table {}",
                bound(said),
                bound(recorded)
            ),
        });
    }
    Ok(said.map_or(0, |(_, to)| to))
}

fn finish(
    findings: Vec<Finding>,
    warnings: Vec<String>,
    entries: i64,
    from: i64,
    frontier: &Frontier,
) -> Report {
    Report {
        entries,
        from,
        recomputed: (entries - from).max(0),
        archived: 0,
        root: crate::domain::digest::hex(&frontier.root()),
        findings,
        warnings,
    }
}

/// The tree's right edge at the trusted checkpoint's size, from the stored nodes, if it
/// still has the checkpoint's root there; otherwise what is wrong. Continuing from that
/// edge with the later leaves recomputed, and arriving at the head's root, proves the
/// head's tree extends the checkpoint's: the consistency an incremental run relies on.
async fn resume(
    db: &Db,
    checkpoint: &Checkpoint,
    head_size: i64,
) -> Result<Result<Frontier, Finding>, store::Error> {
    let size = checkpoint.size;
    let last = i64::try_from(size).unwrap_or(i64::MAX) - 1;
    if i64::try_from(size).unwrap_or(i64::MAX) > head_size {
        return Ok(Err(Finding {
            damage: Damage::Truncated,
            index: Some(head_size),
            detail: format!(
                "the trusted checkpoint vouches for {size} entries; the head has {head_size}"
            ),
        }));
    }
    let ids = Frontier::node_ids(size);
    let stored: BTreeMap<(u8, u64), Hash> = audit_log::nodes(db, &ids)
        .await?
        .into_iter()
        .map(|(l, i, h)| ((l, i), h))
        .collect();
    if ids.iter().any(|id| !stored.contains_key(id)) {
        return Ok(Err(Finding {
            damage: Damage::Missing,
            index: Some(last),
            detail: format!("tree nodes under the first {size} entries are missing"),
        }));
    }
    let frontier = Frontier::from_nodes(size, |l, i| stored[&(l, i)]);
    if frontier.root() != checkpoint.root {
        return Ok(Err(Finding {
            damage: Damage::Rewritten,
            index: Some(last),
            detail: format!(
                "the stored tree no longer has the root the trusted checkpoint of {size} \
                 entries vouches for"
            ),
        }));
    }
    Ok(Ok(frontier))
}

/// Pairs of trusted checkpoints that cannot both be true. Two roots for one size; or a
/// checkpoint that is not a prefix of a larger one the log matches (the log, recomputed
/// from its bytes, is then the consistency proof: its prefix of that size has another
/// root). A larger checkpoint the log does not match is REWRITTEN or TRUNCATED instead:
/// without its tree nothing shows whether the smaller one is its prefix.
fn split_views(trusted: &[(String, Checkpoint)], roots_at: &BTreeMap<u64, Hash>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut by_size: BTreeMap<u64, (&str, &Hash)> = BTreeMap::new();
    for (source, c) in trusted {
        match by_size.get(&c.size) {
            Some((first, root)) if **root != c.root => findings.push(Finding {
                damage: Damage::SplitView,
                index: None,
                detail: format!(
                    "{first} and {source} both vouch for {} entries, with different roots: \
                     the key signed two different logs",
                    c.size
                ),
            }),
            Some(_) => {}
            None => {
                by_size.insert(c.size, (source, &c.root));
            }
        }
    }
    let anchor = by_size
        .iter()
        .rev()
        .find(|(size, (_, root))| roots_at.get(size) == Some(root));
    let Some((&anchor_size, (anchor_source, _))) = anchor else {
        return findings;
    };
    for (size, (source, root)) in by_size.range(..anchor_size) {
        if roots_at.get(size).is_some_and(|r| r != *root) {
            findings.push(Finding {
                damage: Damage::SplitView,
                index: Some(i64::try_from(*size).unwrap_or(i64::MAX) - 1),
                detail: format!(
                    "{source} ({size} entries) is not a prefix of {anchor_source} \
                     ({anchor_size} entries), which this log matches: the key signed two \
                     different logs"
                ),
            });
        }
    }
    findings
}

/// A page's stored tree nodes, by level, in index order.
struct PageNodes(Vec<Vec<(u64, Hash)>>);

impl PageNodes {
    fn new(nodes: Vec<audit_log::Node>) -> Self {
        let mut levels: Vec<Vec<(u64, Hash)>> = Vec::new();
        for (level, idx, hash) in nodes {
            let level = usize::from(level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push((idx, hash));
        }
        for level in &mut levels {
            level.sort_unstable_by_key(|(idx, _)| *idx);
        }
        Self(levels)
    }

    fn get(&self, level: u8, idx: u64) -> Option<&Hash> {
        let nodes = self.0.get(usize::from(level))?;
        let at = nodes.binary_search_by_key(&idx, |(i, _)| *i).ok()?;
        Some(&nodes[at].1)
    }
}

/// What one stored entry shows by itself, checked as it is read, before the page is
/// walked in order.
struct Checked {
    idx: i64,
    /// The leaf the tree gets: the hash of the bytes, or for an archived (empty) body the
    /// stored hash; None if that is not 32 bytes.
    leaf: Option<Hash>,
    archived: bool,
    /// The stored leaf hash is not the hash of the bytes.
    leaf_differs: bool,
    entry: Result<Seen, String>,
    /// The bytes are the entry's canonical form.
    canonical: bool,
    /// The first indexed column that differs from the bytes.
    column: Option<&'static str>,
    /// The record its columns name, and its link to that record's previous entry.
    record: Option<(String, i64)>,
    prev: Option<i64>,
}

/// What the walk in order needs of an entry.
struct Seen {
    i: i64,
    ts: i64,
    log: String,
    act: Action,
    /// What a `clock_backwards` entry says, as a warning.
    clock: Option<String>,
}

fn check(row: RowRef<'_>) -> Checked {
    if row.bytes.is_empty() {
        return Checked {
            idx: row.idx,
            leaf: row.leaf_hash.try_into().ok(),
            archived: true,
            leaf_differs: false,
            entry: Err(String::new()),
            canonical: true,
            column: None,
            record: record_of(&row),
            prev: row.prev_idx,
        };
    }
    let leaf = leaf_hash(row.bytes);
    let (entry, canonical, column) = match scan::facts(row.bytes) {
        // The one-pass reading vouches for the canonical form; a clock entry, rare, is
        // read whole for what it says.
        Some(f) => {
            let clock = (f.act == Action::ClockBackwards)
                .then(|| Entry::from_bytes(row.bytes).ok().map(|e| clock_warning(&e)))
                .flatten();
            (Ok(Seen::of(&f, clock)), true, differing_column(&row, &f))
        }
        // Anything it is unsure of gets the whole round trip, which has the last word.
        None => match Entry::from_bytes(row.bytes) {
            Err(e) => (Err(e.to_string()), true, None),
            Ok(e) => {
                let f = Facts::of(&e);
                let clock = (e.act == Action::ClockBackwards).then(|| clock_warning(&e));
                (
                    Ok(Seen::of(&f, clock)),
                    e.to_canonical_bytes() == row.bytes,
                    differing_column(&row, &f),
                )
            }
        },
    };
    Checked {
        idx: row.idx,
        leaf: Some(leaf),
        archived: false,
        leaf_differs: row.leaf_hash != leaf,
        entry,
        canonical,
        column,
        record: record_of(&row),
        prev: row.prev_idx,
    }
}

fn record_of(row: &RowRef<'_>) -> Option<(String, i64)> {
    row.record_type.map(str::to_owned).zip(row.record_id)
}

impl Seen {
    fn of(f: &Facts<'_>, clock: Option<String>) -> Self {
        Self {
            i: f.i,
            ts: f.ts,
            log: f.log.to_owned(),
            act: f.act,
            clock,
        }
    }
}

/// What a `clock_backwards` entry says, as a warning: the log is fine, but the times of
/// the entries after it are the log's, not the clock's, until the clock caught up.
fn clock_warning(entry: &Entry) -> String {
    let said = |f: fn(&crate::domain::diff::Change) -> &serde_json::Value| {
        entry
            .diff
            .first()
            .and_then(|c| f(c).as_str())
            .unwrap_or("?")
            .to_owned()
    };
    format!(
        "CLOCK: at entry {} the clock read {}, behind the log's {}; entries written until it \
         caught up carry the log's time",
        entry.i,
        said(|c| &c.new),
        said(|c| &c.old)
    )
}

/// The first indexed column that does not say what the bytes say.
fn differing_column(row: &RowRef<'_>, f: &Facts<'_>) -> Option<&'static str> {
    [
        ("ts", row.ts == f.ts),
        ("category", row.category == f.cat.as_str()),
        ("action", row.action == f.act.as_str()),
        ("actor_kind", row.actor_kind == f.actor_kind.as_str()),
        ("actor_id", row.actor_id == f.actor_id),
        ("record_type", row.record_type == f.rec_type),
        ("record_id", row.record_id == f.rec_id),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(name, _)| name)
}
