//! Archive files: a run of old entries whose bodies left the database, with what proves
//! them part of the signed log (a range proof and a signed checkpoint) and what chains one
//! archive to the one before (a consistency proof). A file checks on its own, with no
//! database; the format is documented in docs/PROOFS.md.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, Verifier};
use crate::domain::{
    audit::{Action, Entry, leaf_hash},
    merkle::{self, Hash},
};

pub const FORMAT: &str = "keeptrack-archive/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub format: String,
    /// The index of the first entry in `entries`.
    pub first: u64,
    /// The entries' canonical JSON, exactly as they were stored, in index order.
    pub entries: Vec<String>,
    /// The size of the tree `checkpoint` signs.
    pub tree_size: u64,
    /// The hashes of the stored nodes tiling leaves `[0, first)`, left to right, base64.
    pub left: Vec<String>,
    /// The hashes of the stored nodes tiling `[first + entries, tree_size)`, left to right.
    pub right: Vec<String>,
    /// The signed note (C2SP tlog-checkpoint) for `tree_size`.
    pub checkpoint: String,
    /// The archive before this one, if any: its tree and the consistency proof from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
    /// The log's public key (trust only the copy you were given; `--key` takes yours).
    pub public_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Previous {
    /// The previous archive's `tree_size` and its checkpoint's root, base64.
    pub tree_size: u64,
    pub root: String,
    /// The RFC 9162 consistency proof from that tree to `tree_size`, base64.
    pub consistency: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not an archive file: {0}")]
    Malformed(String),
    #[error("the archive does not hold: {0}")]
    Invalid(String),
}

/// What a checked archive proves.
#[derive(Clone, Debug)]
pub struct Checked {
    pub first: u64,
    /// One past the last entry.
    pub end: u64,
    pub checkpoint: Checkpoint,
    /// The previous archive's tree size and root, as this one's consistency proof holds.
    pub previous: Option<(u64, Hash)>,
    /// The times of the first and last entries, µs.
    pub from_ts: i64,
    pub to_ts: i64,
    /// Entries that say the clock went backwards (as `audit verify` warns of them).
    pub clock_backwards: Vec<u64>,
    /// The file was checked with its own key, not one the caller gave.
    pub own_key: bool,
}

fn hash(b64: &str) -> Result<Hash, ArchiveError> {
    B64.decode(b64)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ArchiveError::Malformed("a hash is not 32 base64 bytes".into()))
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, ArchiveError> {
    list.iter().map(|h| hash(h)).collect()
}

pub fn encode(h: &Hash) -> String {
    B64.encode(h)
}

/// Checks an archive file from its bytes alone (any bytes, without panicking): the
/// checkpoint's signature under `key` (or the file's own key), every entry's place in the
/// signed tree, each entry's own index and log, and the consistency proof to the previous
/// archive's tree.
pub fn check(bytes: &[u8], key: Option<&Verifier>) -> Result<Checked, ArchiveError> {
    let bad = |m: &str| ArchiveError::Malformed(m.to_owned());
    let invalid = |m: String| ArchiveError::Invalid(m);
    let archive: Archive =
        serde_json::from_slice(bytes).map_err(|e| ArchiveError::Malformed(e.to_string()))?;
    if archive.format != FORMAT {
        return Err(bad("unknown format"));
    }
    let own_key = key.is_none();
    let own;
    let key = match key {
        Some(k) => k,
        None => {
            own = Verifier::from_vkey(&archive.public_key)
                .map_err(|e| ArchiveError::Malformed(e.to_string()))?;
            &own
        }
    };
    let checkpoint = key
        .open(archive.checkpoint.as_bytes())
        .map_err(|e| invalid(format!("checkpoint: {e}")))?;
    if checkpoint.size != archive.tree_size {
        return Err(invalid("the checkpoint is for another tree size".into()));
    }
    if archive.entries.is_empty() {
        return Err(bad("no entries"));
    }
    let leaves: Vec<Hash> = archive
        .entries
        .iter()
        .map(|e| leaf_hash(e.as_bytes()))
        .collect();
    merkle::verify_range(
        archive.first,
        &leaves,
        checkpoint.size,
        &hashes(&archive.left)?,
        &hashes(&archive.right)?,
        &checkpoint.root,
    )
    .map_err(|e| invalid(format!("the entries are not the signed log's: {e}")))?;
    let mut clock_backwards = Vec::new();
    let (mut from_ts, mut to_ts) = (i64::MAX, i64::MIN);
    for (k, text) in archive.entries.iter().enumerate() {
        let index = archive.first + k as u64;
        let entry = Entry::from_bytes(text.as_bytes())
            .map_err(|e| ArchiveError::Malformed(format!("entry {index}: {e}")))?;
        if u64::try_from(entry.i).ok() != Some(index) || entry.log != checkpoint.origin {
            return Err(invalid(format!(
                "the entry at {index} names another index or log"
            )));
        }
        if entry.act == Action::ClockBackwards {
            clock_backwards.push(index);
        }
        from_ts = from_ts.min(entry.ts);
        to_ts = to_ts.max(entry.ts);
    }
    let previous = match &archive.previous {
        None => None,
        Some(p) => {
            let root = hash(&p.root)?;
            merkle::verify_consistency(
                p.tree_size,
                checkpoint.size,
                &root,
                &checkpoint.root,
                &hashes(&p.consistency)?,
            )
            .map_err(|e| invalid(format!("not consistent with the previous archive: {e}")))?;
            Some((p.tree_size, root))
        }
    };
    Ok(Checked {
        first: archive.first,
        end: archive.first + archive.entries.len() as u64,
        checkpoint,
        previous,
        from_ts,
        to_ts,
        clock_backwards,
        own_key,
    })
}

/// Checks that archives, in index order, chain into one log: each begins where the one
/// before ended, and its consistency proof starts from that one's signed tree.
pub fn check_chain(archives: &[Checked]) -> Result<(), ArchiveError> {
    for pair in archives.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.first != a.end {
            return Err(ArchiveError::Invalid(format!(
                "entries {} to {} are in neither archive",
                a.end,
                b.first.saturating_sub(1)
            )));
        }
        if b.previous != Some((a.checkpoint.size, a.checkpoint.root)) {
            return Err(ArchiveError::Invalid(format!(
                "the archive from entry {} does not continue the signed tree of the one before",
                b.first
            )));
        }
        if a.checkpoint.origin != b.checkpoint.origin {
            return Err(ArchiveError::Invalid("the archives are of two logs".into()));
        }
    }
    Ok(())
}

/// The stored nodes [`build`] needs for entries `[first, end)` in the tree of `tree_size`,
/// continuing the archive signed at `previous` (a tree size), without duplicates.
pub fn node_ids(
    first: u64,
    end: u64,
    tree_size: u64,
    previous: Option<u64>,
) -> Result<Vec<merkle::NodeId>, merkle::ProofError> {
    let (mut ids, right) = merkle::range_proof_nodes(first, end, tree_size)?;
    ids.extend(right);
    if let Some(p) = previous {
        ids.extend(merkle::Frontier::node_ids(p));
        ids.extend(merkle::consistency_proof_nodes(p, tree_size)?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The archive file for `entries` (from index `first`), signed by `note` at `tree_size`,
/// with its proofs from the stored nodes `get` returns (those of [`node_ids`]).
pub fn build(
    first: u64,
    entries: Vec<String>,
    tree_size: u64,
    previous: Option<u64>,
    note: String,
    key: &Verifier,
    mut get: impl FnMut(u8, u64) -> Hash,
) -> Result<Archive, merkle::ProofError> {
    let end = first + entries.len() as u64;
    let (left, right) = merkle::range_proof_nodes(first, end, tree_size)?;
    let mut hashes_of = |ids: Vec<merkle::NodeId>| -> Vec<String> {
        ids.into_iter().map(|(l, i)| encode(&get(l, i))).collect()
    };
    let (left, right) = (hashes_of(left), hashes_of(right));
    let previous = match previous {
        None => None,
        Some(p) => Some(Previous {
            tree_size: p,
            root: encode(&merkle::Frontier::from_nodes(p, &mut get).root()),
            consistency: merkle::consistency_proof(p, tree_size, &mut get)?
                .iter()
                .map(encode)
                .collect(),
        }),
    };
    Ok(Archive {
        format: FORMAT.into(),
        first,
        entries,
        tree_size,
        left,
        right,
        checkpoint: note,
        previous,
        public_key: key.to_vkey(),
    })
}

/// Writes a new file (never over an existing one) and makes it and its name durable.
pub fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => std::fs::File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{
        Signer,
        tests::{edits, mutate},
    };
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(i: u64) -> String {
        format!(
            r#"{{"act":"install","actor":{{"initials":"SPSA","kind":"system","name":"System"}},"cat":"system","i":{i},"log":"log","ts":{i},"v":1}}"#
        )
    }

    /// Archives of entries 0..5 (signed at 6 entries) and 5..7 (signed at 9, chained to
    /// the first) of one log.
    fn valid() -> (Verifier, Vec<u8>, Vec<u8>) {
        let signer = Signer::from_skey(
            "PRIVATE+KEY+log+00000000+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH",
        )
        .unwrap();
        let mut frontier = merkle::Frontier::new();
        let mut nodes = BTreeMap::new();
        let mut roots = Vec::new();
        for i in 0..9 {
            nodes.extend(
                frontier
                    .push(leaf_hash(entry(i).as_bytes()))
                    .into_iter()
                    .map(|(l, i, h)| ((l, i), h)),
            );
            roots.push(frontier.root());
        }
        let make = |first: u64, end: u64, size: u64, previous: Option<u64>| {
            let note = signer.sign(&Checkpoint {
                origin: "log".into(),
                size,
                root: roots[size as usize - 1],
            });
            let entries = (first..end).map(entry).collect();
            let a = build(
                first,
                entries,
                size,
                previous,
                note,
                &signer.verifier(),
                |l, i| nodes[&(l, i)],
            )
            .unwrap();
            serde_json::to_vec(&a).unwrap()
        };
        (
            signer.verifier(),
            make(0, 5, 6, None),
            make(5, 7, 9, Some(6)),
        )
    }

    #[test]
    fn archives_check_and_chain() {
        let (key, a, b) = valid();
        let a = check(&a, Some(&key)).unwrap();
        let b = check(&b, Some(&key)).unwrap();
        assert_eq!((a.first, a.end, b.first, b.end), (0, 5, 5, 7));
        check_chain(&[a.clone(), b.clone()]).unwrap();
        assert!(check_chain(&[b.clone(), a.clone()]).is_err());
        assert!(check_chain(&[a.clone(), a]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = check(&bytes, None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// A valid archive with a few bytes changed never panics the checker, and proves
        /// nothing but the original entries.
        #[test]
        fn mutated_archives_never_panic_or_prove_other_entries(edits in edits(), second in any::<bool>()) {
            static VALID: std::sync::LazyLock<(Verifier, Vec<u8>, Vec<u8>)> =
                std::sync::LazyLock::new(valid);
            let (key, a, b) = &*VALID;
            let original = if second { b } else { a };
            let bytes = mutate(original, &edits);
            if let Ok(c) = check(&bytes, Some(key)) {
                let parsed: Archive = serde_json::from_slice(&bytes).unwrap();
                let was: Archive = serde_json::from_slice(original).unwrap();
                prop_assert_eq!((c.first, parsed.entries), (was.first, was.entries));
            }
        }
    }
}
