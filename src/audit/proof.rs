//! Offline proof bundles: one entry, its inclusion proof, a signed checkpoint covering it
//! and the log's public key: everything an auditor needs, with no database. The format
//! is documented in docs/PROOFS.md so any RFC 9162 tool can check it.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, Verifier};
use crate::domain::{
    audit::{Entry, leaf_hash},
    merkle::{self, Hash},
};
use crate::store::{self, Db, audit_log};

pub const FORMAT: &str = "keeptrack-proof/v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// The entry's index in the log.
    pub index: u64,
    /// The entry's canonical JSON, exactly as stored (its bytes are the leaf).
    pub entry: String,
    /// The tree size the proof and the checkpoint are for.
    pub tree_size: u64,
    /// The RFC 9162 audit path, deepest sibling first, base64.
    pub inclusion: Vec<String>,
    /// The signed note (C2SP tlog-checkpoint) for `tree_size`.
    pub checkpoint: String,
    /// The log's public key (C2SP note verifier key). Trust it only if it is the key you
    /// were given; `audit check --key` takes yours instead.
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("no entry {0} in the log")]
    NoEntry(u64),
    #[error("entry {0} is archived: its proof is the archive file that holds it")]
    Archived(u64),
    #[error("no stored checkpoint covers entry {0} yet; the next one will")]
    NotCovered(u64),
    #[error("the stored tree is missing node {0}/{1}")]
    MissingNode(u8, u64),
    #[error("not a proof bundle: {0}")]
    Malformed(String),
    #[error("the proof does not hold: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Builds the bundle for entry `index`, against the newest stored checkpoint that covers
/// it (checked with `key`, so a bundle never carries a checkpoint the key did not sign).
pub async fn prove(db: &Db, index: u64, key: &Verifier) -> Result<Bundle, ProofError> {
    let idx = i64::try_from(index).map_err(|_| ProofError::NoEntry(index))?;
    let row = audit_log::rows(db, idx, idx + 1, 1)
        .await?
        .into_iter()
        .find(|r| r.idx == idx)
        .ok_or(ProofError::NoEntry(index))?;
    if row.bytes.is_empty() {
        return Err(ProofError::Archived(index));
    }
    let (note, checkpoint) = audit_log::checkpoints(db, 1000)
        .await?
        .into_iter()
        .filter(|(size, _, _)| *size > idx)
        .find_map(|(_, _, note)| key.open(note.as_bytes()).ok().map(|c| (note, c)))
        .ok_or(ProofError::NotCovered(index))?;
    let ids = merkle::inclusion_proof_nodes(index, checkpoint.size)
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    let nodes: BTreeMap<(u8, u64), Hash> = audit_log::nodes(db, &ids)
        .await?
        .into_iter()
        .map(|(l, i, h)| ((l, i), h))
        .collect();
    if let Some((l, i)) = ids.iter().find(|id| !nodes.contains_key(id)) {
        return Err(ProofError::MissingNode(*l, *i));
    }
    let path = merkle::inclusion_proof(index, checkpoint.size, |l, i| nodes[&(l, i)])
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    Ok(Bundle {
        format: FORMAT.into(),
        index,
        entry: String::from_utf8(row.bytes)
            .map_err(|_| ProofError::Malformed("entry is not UTF-8".into()))?,
        tree_size: checkpoint.size,
        inclusion: path.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: note,
        public_key: key.to_vkey(),
    })
}

/// What a checked bundle proves.
#[derive(Debug)]
pub struct Proven {
    pub entry: Entry,
    pub checkpoint: Checkpoint,
}

/// Checks a bundle from its bytes alone (any bytes, without panicking): the checkpoint's
/// signature under `key` (or, failing that, the bundle's own key), the entry's place in
/// the signed tree, and that the entry is the one at that index.
pub fn check(bytes: &[u8], key: Option<&Verifier>) -> Result<Proven, ProofError> {
    let bad = |m: &str| ProofError::Malformed(m.to_owned());
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
    if bundle.format != FORMAT {
        return Err(bad("unknown format"));
    }
    let own;
    let key = match key {
        Some(k) => k,
        None => {
            own = Verifier::from_vkey(&bundle.public_key)
                .map_err(|e| ProofError::Malformed(e.to_string()))?;
            &own
        }
    };
    let checkpoint = key
        .open(bundle.checkpoint.as_bytes())
        .map_err(|e| ProofError::Invalid(format!("checkpoint: {e}")))?;
    if checkpoint.size != bundle.tree_size {
        return Err(ProofError::Invalid(
            "the checkpoint is for another tree size".into(),
        ));
    }
    let path: Vec<Hash> = bundle
        .inclusion
        .iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad("a proof hash is not 32 base64 bytes"))
        })
        .collect::<Result<_, _>>()?;
    let leaf = leaf_hash(bundle.entry.as_bytes());
    merkle::verify_inclusion(
        &leaf,
        bundle.index,
        checkpoint.size,
        &path,
        &checkpoint.root,
    )
    .map_err(|e| ProofError::Invalid(e.to_string()))?;
    let entry = Entry::from_bytes(bundle.entry.as_bytes())
        .map_err(|e| ProofError::Malformed(e.to_string()))?;
    if u64::try_from(entry.i).ok() != Some(bundle.index) || entry.log != checkpoint.origin {
        return Err(ProofError::Invalid(
            "the entry names another index or log".into(),
        ));
    }
    Ok(Proven { entry, checkpoint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{
        Signer,
        tests::{edits, mutate},
    };
    use proptest::prelude::*;

    const ENTRY: &str = r#"{"act":"install","actor":{"initials":"SPSA","kind":"system","name":"System"},"cat":"system","i":1,"log":"log","ts":1,"v":1}"#;

    /// A valid bundle for entry 1 of a 3-entry log.
    fn valid_bundle() -> Vec<u8> {
        let signer = Signer::from_skey(
            "PRIVATE+KEY+log+00000000+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH",
        )
        .unwrap();
        let leaves = [
            leaf_hash(b"zero"),
            leaf_hash(ENTRY.as_bytes()),
            leaf_hash(b"two"),
        ];
        let mut frontier = merkle::Frontier::new();
        let mut nodes = BTreeMap::new();
        for leaf in leaves {
            nodes.extend(frontier.push(leaf).into_iter().map(|(l, i, h)| ((l, i), h)));
        }
        let path = merkle::inclusion_proof(1, 3, |l, i| nodes[&(l, i)]).unwrap();
        let checkpoint = Checkpoint {
            origin: "log".into(),
            size: 3,
            root: frontier.root(),
        };
        let bundle = Bundle {
            format: FORMAT.into(),
            index: 1,
            entry: ENTRY.into(),
            tree_size: 3,
            inclusion: path.iter().map(|h| B64.encode(h)).collect(),
            checkpoint: signer.sign(&checkpoint),
            public_key: signer.verifier().to_vkey(),
        };
        let bytes = serde_json::to_vec(&bundle).unwrap();
        assert!(check(&bytes, None).is_ok());
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// A valid bundle with a few bytes changed never panics the checker, and proves
        /// nothing but the original entry at its index.
        #[test]
        fn mutated_bundles_never_panic_or_prove_another_entry(edits in edits()) {
            static VALID: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(valid_bundle);
            let bytes = mutate(&VALID, &edits);
            if let Ok(p) = check(&bytes, None) {
                prop_assert_eq!(p.entry.i, 1);
                prop_assert_eq!(p.entry, Entry::from_bytes(ENTRY.as_bytes()).unwrap());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = check(&bytes, None);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn arbitrary_bundles_never_panic(
            index in any::<u64>(), size in any::<u64>(),
            entry in ".{0,40}", path in proptest::collection::vec("[A-Za-z0-9+/=]{0,50}", 0..5),
        ) {
            let b = Bundle {
                format: FORMAT.into(), index, entry, tree_size: size, inclusion: path,
                checkpoint: format!("log\\n{size}\\nAAAA\\n\\n— log AAAA\\n"),
                public_key: "log+00000000+AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH".into(),
            };
            let _ = check(&serde_json::to_vec(&b).unwrap(), None);
        }
    }
}
