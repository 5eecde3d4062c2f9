//! `audit verify`: recomputes the log from its stored bytes and names the first damage.
//! Leaves from the bytes, the tree from the leaves, the head from the tree; the indexed
//! columns against the bytes; indices gapless; the guard rails in place.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{
    audit::{Entry, leaf_hash},
    merkle::{Frontier, Hash},
};
use crate::store::{self, Db, audit_log};

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
const GUARDS: [&str; 3] = ["audit_log_no_update", "audit_tree", "log_head_only_grows"];

const PAGE: i64 = 5000;

pub async fn verify(db: &Db, progress: impl Fn(u64, u64)) -> Result<Report, store::Error> {
    let (head_size, head_root) = audit_log::head(db).await?;
    let mut findings = Vec::new();
    let mut warnings = Vec::new();
    let mut frontier = Frontier::new();
    let mut expected: i64 = 0;
    let mut origin: Option<String> = None;
    let mut last_ts = i64::MIN;
    let mut find = |damage, index: Option<i64>, detail: String| {
        findings.push(Finding {
            damage,
            index,
            detail,
        });
    };
    loop {
        let rows = audit_log::rows(db, expected, PAGE).await?;
        if rows.is_empty() {
            break;
        }
        let first_leaf = u64::try_from(expected).unwrap_or(0);
        let stored: BTreeMap<(u8, u64), Hash> =
            audit_log::nodes_in_range(db, first_leaf, first_leaf + rows.len() as u64 + 1)
                .await?
                .into_iter()
                .map(|(l, i, h)| ((l, i), h))
                .collect();
        for row in &rows {
            if row.idx != expected {
                find(
                    Damage::Missing,
                    Some(expected),
                    format!("entries {expected} to {} are missing", row.idx - 1),
                );
                return Ok(finish(findings, warnings, expected, &frontier));
            }
            let leaf = leaf_hash(&row.bytes);
            if row.leaf_hash != leaf {
                find(
                    Damage::Edited,
                    Some(row.idx),
                    "the stored leaf hash does not match the entry's bytes".into(),
                );
            }
            match Entry::from_bytes(&row.bytes) {
                Err(e) => find(
                    Damage::Edited,
                    Some(row.idx),
                    format!("the bytes are not an entry: {e}"),
                ),
                Ok(entry) => {
                    if entry.to_canonical_bytes() != row.bytes {
                        find(
                            Damage::Edited,
                            Some(row.idx),
                            "the bytes are not in canonical form".into(),
                        );
                    }
                    if entry.i != row.idx {
                        find(
                            Damage::Reordered,
                            Some(row.idx),
                            format!("the entry at {} says it is entry {}", row.idx, entry.i),
                        );
                    }
                    match &origin {
                        None => origin = Some(entry.log.clone()),
                        Some(o) if *o != entry.log => find(
                            Damage::Inserted,
                            Some(row.idx),
                            format!("the entry belongs to log {:?}, not {o:?}", entry.log),
                        ),
                        Some(_) => {}
                    }
                    if let Some(column) = differing_column(row, &entry) {
                        find(
                            Damage::Edited,
                            Some(row.idx),
                            format!("the {column} column differs from the entry's bytes"),
                        );
                    }
                    if entry.ts < last_ts {
                        warnings.push(format!(
                            "entry {} is timed before the one before it",
                            row.idx
                        ));
                    }
                    last_ts = entry.ts;
                }
            }
            for (level, index, hash) in frontier.push(leaf) {
                match stored.get(&(level, index)) {
                    Some(h) if *h == hash => {}
                    Some(_) => find(
                        Damage::Rewritten,
                        Some(row.idx),
                        format!("tree node {level}/{index} does not match the entries under it"),
                    ),
                    None => find(
                        Damage::Missing,
                        Some(row.idx),
                        format!("tree node {level}/{index} is missing"),
                    ),
                }
            }
            expected += 1;
        }
        progress(
            u64::try_from(expected).unwrap_or(0),
            u64::try_from(head_size).unwrap_or(0),
        );
    }
    if expected < head_size {
        find(
            Damage::Truncated,
            Some(expected),
            format!("the head says {head_size} entries but only {expected} are stored"),
        );
    } else if expected > head_size {
        find(
            Damage::Inserted,
            Some(head_size),
            format!(
                "{} entries stand beyond the head's size {head_size}",
                expected - head_size
            ),
        );
    } else if expected > 0 && head_root.as_deref() != Some(frontier.root().as_slice()) {
        find(
            Damage::Rewritten,
            None,
            "the head's root is not the root of the stored entries".into(),
        );
    }
    let triggers = audit_log::guard_triggers(db).await?;
    for guard in GUARDS {
        if !triggers.iter().any(|t| t.starts_with(guard)) {
            warnings.push(format!("the guard trigger {guard}* is missing or disabled"));
        }
    }
    warnings.push(
        "UNANCHORED: no signed checkpoint outside the database vouches for this log yet; \
         it is consistent with itself only"
            .into(),
    );
    Ok(finish(findings, warnings, expected, &frontier))
}

fn finish(
    findings: Vec<Finding>,
    warnings: Vec<String>,
    entries: i64,
    frontier: &Frontier,
) -> Report {
    Report {
        entries,
        root: frontier.root().iter().map(|b| format!("{b:02x}")).collect(),
        findings,
        warnings,
    }
}

/// The first indexed column that does not say what the bytes say.
fn differing_column(row: &audit_log::Row, e: &Entry) -> Option<&'static str> {
    let rec_type = e.rec.as_ref().map(|r| r.kind.as_str());
    let rec_id = e.rec.as_ref().map(|r| r.id);
    [
        ("ts", row.ts == e.ts),
        ("category", row.category == e.cat.as_str()),
        ("action", row.action == e.act.as_str()),
        ("actor_kind", row.actor_kind == e.actor.kind.as_str()),
        ("actor_id", row.actor_id == e.actor.id),
        ("record_type", row.record_type.as_deref() == rec_type),
        ("record_id", row.record_id == rec_id),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(name, _)| name)
}
