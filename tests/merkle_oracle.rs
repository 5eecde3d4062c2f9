//! Differential test of `keeptrack::domain::merkle` against an independent RFC 6962/9162
//! implementation: `tlog_tiles` (Cloudflare's port of Go's `golang.org/x/mod/sumdb/tlog`).
//! The two share no code and not even a `sha2` version, so only bytes cross over.
//!
//! On random trees it compares leaf hashes, roots (whole tree and prefixes), inclusion and
//! consistency proofs byte for byte, each side's verifier on the other's proofs, and both
//! verifiers' verdicts on spoiled proofs. Any difference is a disagreement; there must be
//! none.

use keeptrack::domain::merkle::{self, Frontier, Hash};
use tlog_tiles as tlog;

const TREES: usize = 10_000;
const MAX_SIZE: u64 = 300;

/// SplitMix64: a small deterministic generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A tree size, often next to a power of two where the edge cases live.
    fn size(&mut self, max: u64) -> u64 {
        if self.next().is_multiple_of(4) {
            let p = 1u64 << self.range(0, u64::from(max.ilog2()));
            (p + self.range(0, 2)).saturating_sub(1).clamp(1, max)
        } else {
            self.range(1, max)
        }
    }
}

/// tlog's hash storage, in its own stored-hash-index order.
struct TlogStore(Vec<tlog::Hash>);

impl tlog::HashReader for TlogStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn to_tlog(proof: &[Hash]) -> Vec<tlog::Hash> {
    proof.iter().map(|h| tlog::Hash(*h)).collect()
}

fn from_tlog(proof: &[tlog::Hash]) -> Vec<Hash> {
    proof.iter().map(|h| h.0).collect()
}

#[derive(Default)]
struct Tally {
    checks: u64,
    disagreements: u64,
}

impl Tally {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.disagreements += 1;
            if self.disagreements <= 20 {
                eprintln!("disagreement: {}", what());
            }
        }
    }
}

#[test]
fn merkle_agrees_with_tlog_tiles() {
    let mut rng = Rng(0x6b65_6570_7472_6163);
    let mut tally = Tally::default();
    let (mut inclusion_proofs, mut consistency_proofs, mut leaves_total) = (0, 0, 0);
    for tree in 0..TREES {
        let size = rng.size(MAX_SIZE);
        leaves_total += size;

        // Build both: our frontier and node store, tlog's stored hashes.
        let mut frontier = Frontier::new();
        let mut levels: Vec<Vec<Hash>> = Vec::new();
        let mut tlog_store = TlogStore(Vec::new());
        let mut leaves = Vec::new();
        for n in 0..size {
            let len = rng.range(0, 48) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let leaf = merkle::leaf_hash(&data);
            tally.check(tlog::record_hash(&data).0 == leaf, || {
                format!("tree {tree}: leaf hash of {data:02x?}")
            });
            leaves.push(leaf);
            for (level, index, hash) in frontier.push(leaf) {
                let level = usize::from(level);
                if levels.len() <= level {
                    levels.push(Vec::new());
                }
                assert_eq!(levels[level].len() as u64, index);
                levels[level].push(hash);
            }
            let new = tlog::stored_hashes(n, &data, &tlog_store).unwrap();
            tlog_store.0.extend(new);
        }
        let get = |level: u8, index: u64| levels[usize::from(level)][index as usize];

        // Roots: the whole tree three ways, and a prefix rebuilt from stored nodes.
        let root = frontier.root();
        let tlog_root = tlog::tree_hash(size, &tlog_store).unwrap().0;
        tally.check(root == tlog_root, || format!("tree {tree}: root of {size}"));
        tally.check(merkle::root(&leaves) == tlog_root, || {
            format!("tree {tree}: root() of {size}")
        });
        let prefix = rng.range(0, size);
        let prefix_root = Frontier::from_nodes(prefix, get).root();
        let tlog_prefix_root = tlog::tree_hash(prefix, &tlog_store).unwrap().0;
        tally.check(prefix_root == tlog_prefix_root, || {
            format!("tree {tree}: root of prefix {prefix}")
        });
        let roots_at = |n: u64| Frontier::from_nodes(n, get).root();

        // Inclusion proofs, in the whole tree and in a prefix.
        for t in [size, rng.range(1, size)] {
            let index = rng.range(0, t - 1);
            let th = roots_at(t);
            let ours = merkle::inclusion_proof(index, t, get).unwrap();
            let theirs = tlog::prove_record(t, index, &tlog_store).unwrap();
            inclusion_proofs += 1;
            let what = || format!("tree {tree}: inclusion of {index} in {t}");
            tally.check(ours == from_tlog(&theirs), what);
            let leaf = leaves[index as usize];
            let ours_by_tlog =
                tlog::check_record(&to_tlog(&ours), t, tlog::Hash(th), index, tlog::Hash(leaf));
            tally.check(ours_by_tlog.is_ok(), what);
            let theirs_by_us = merkle::verify_inclusion(&leaf, index, t, &from_tlog(&theirs), &th);
            tally.check(theirs_by_us.is_ok(), what);
            // Spoiled: both must reject.
            if !ours.is_empty() {
                let mut bad = ours.clone();
                let i = rng.range(0, bad.len() as u64 - 1) as usize;
                bad[i][rng.range(0, 31) as usize] ^= 1 << rng.range(0, 7);
                let tlog_says =
                    tlog::check_record(&to_tlog(&bad), t, tlog::Hash(th), index, tlog::Hash(leaf));
                let we_say = merkle::verify_inclusion(&leaf, index, t, &bad, &th);
                tally.check(tlog_says.is_err() && we_say.is_err(), what);
            }
        }

        // Consistency proofs between two sizes of this tree (tlog wants 1 <= m <= n).
        for _ in 0..2 {
            let n = rng.range(1, size);
            let m = if rng.next().is_multiple_of(8) {
                n
            } else {
                rng.range(1, n)
            };
            let (old, new) = (roots_at(m), roots_at(n));
            let ours = merkle::consistency_proof(m, n, get).unwrap();
            let theirs = tlog::prove_tree(n, m, &tlog_store).unwrap();
            consistency_proofs += 1;
            let what = || format!("tree {tree}: consistency {m} -> {n}");
            tally.check(ours == from_tlog(&theirs), what);
            let ours_by_tlog =
                tlog::check_tree(&to_tlog(&ours), n, tlog::Hash(new), m, tlog::Hash(old));
            tally.check(ours_by_tlog.is_ok(), what);
            let theirs_by_us = merkle::verify_consistency(m, n, &old, &new, &from_tlog(&theirs));
            tally.check(theirs_by_us.is_ok(), what);
            if !ours.is_empty() {
                let mut bad = ours.clone();
                let i = rng.range(0, bad.len() as u64 - 1) as usize;
                bad[i][rng.range(0, 31) as usize] ^= 1 << rng.range(0, 7);
                let tlog_says =
                    tlog::check_tree(&to_tlog(&bad), n, tlog::Hash(new), m, tlog::Hash(old));
                let we_say = merkle::verify_consistency(m, n, &old, &new, &bad);
                tally.check(tlog_says.is_err() && we_say.is_err(), what);
            }
        }
    }
    eprintln!(
        "{TREES} trees, {leaves_total} leaves, {inclusion_proofs} inclusion and \
         {consistency_proofs} consistency proofs: {} checks, {} disagreements",
        tally.checks, tally.disagreements
    );
    assert_eq!(tally.disagreements, 0);
}
