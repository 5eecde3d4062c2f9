//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs over the audit
//! log's leaves.
//!
//! A leaf is the hash of one audit entry's canonical bytes, `SHA-256(0x00 || bytes)`
//! ([`leaf_hash`]); an interior node is `SHA-256(0x01 || left || right)` ([`node_hash`]);
//! the tree over `n` leaves is RFC 9162 §2.1.1's MTH, which splits at the largest power
//! of two smaller than `n` ([`root`]; the empty tree hashes to [`EMPTY_ROOT`]).
//!
//! # Stored nodes
//!
//! The ledger stores every *complete* subtree node, addressed as `(level, index)`: the
//! node at level `L`, index `k` is the root of the perfect subtree over leaves
//! `k·2^L .. (k+1)·2^L` (level 0 holds the leaf hashes). A node, once complete, never
//! changes as the log grows. [`Frontier::push`] returns the nodes each new leaf completes
//! (on average just under two), so appending costs O(1) amortised hashes and writes.
//!
//! Everything else is computed from those stored nodes with O(log n) fetches, through a
//! `get(level, index) -> Hash` callback that must return the stored node:
//!
//! - [`Frontier::from_nodes`]: the right edge of a tree of any size (and so its root);
//! - [`inclusion_proof`] (RFC 9162 §2.1.3.1) and [`consistency_proof`] (§2.1.4.1). The
//!   subtrees a proof names need not be perfect (the right edge of the tree); such a
//!   subtree's hash is folded from the few perfect nodes that tile it, as in Go's
//!   `golang.org/x/mod/sumdb/tlog` (`subTreeHash`). A proof fetches at most
//!   `2·⌈log₂ n⌉ + 1` nodes and asks only for nodes complete within the requested size.
//!
//! The callback is infallible and synchronous because this layer does no IO. A caller
//! reading an async or fallible store first asks which nodes are needed
//! ([`Frontier::node_ids`], [`inclusion_proof_nodes`], [`consistency_proof_nodes`]:
//! the exact coordinates, in the order the computation will request them, without
//! duplicates), fetches them in one batch, then runs the computation over that batch.
//!
//! # Verification
//!
//! [`verify_inclusion`] and [`verify_consistency`] are RFC 9162 §2.1.3.2 and §2.1.4.2,
//! step by step, after an up-front check of the proof's length (the exact length follows
//! from the sizes). They share nothing with the proof builders but [`node_hash`].
//!
//! Note that a Merkle audit path commits to the root, not to the tree size: when a leaf's
//! path has the same shape in trees of sizes `n` and `n'` (leaf 0 in trees of size 3 and 4,
//! say), a proof for one verifies as a proof for the other against the *same* root. That is
//! inherent to RFC 9162 and harmless — a tree of the other size cannot have that root
//! without a SHA-256 collision — but it means the tree size must be authenticated together
//! with the root (the signed tree head), never taken from the proof request alone. The same
//! holds for consistency proofs.
//!
//! # Conventions
//!
//! - Levels are `u8` (at most 63), indexes and sizes `u64`.
//! - [`inclusion_proof`] and [`consistency_proof`] return `Result`: an index outside the
//!   tree or an old size larger than the new one is a caller's error reported as
//!   [`ProofError`], not a panic (these arrive from requests).
//! - A consistency proof from the empty tree (`m = 0`) is empty, and verifies only if the
//!   old root is [`EMPTY_ROOT`].

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a leaf hash, an interior node or a tree root.
pub type Hash = [u8; 32];

/// A complete subtree node's address: `(level, index)`, covering leaves
/// `index·2^level .. (index+1)·2^level`.
pub type NodeId = (u8, u64);

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The leaf hash of an entry's bytes: `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    super::audit::leaf_hash(bytes)
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1). O(n) hashes; the
/// ledger uses [`Frontier`] instead, this is for whole lists at hand.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Why a proof could not be built or did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    /// The proof does not have the number of hashes the sizes call for.
    #[error("proof has {actual} hashes, a proof for these sizes has exactly {expected}")]
    WrongLength { expected: usize, actual: usize },
    /// The inclusion proof leads to a different root.
    #[error("inclusion proof does not lead to the tree's root")]
    RootMismatch,
    /// The consistency proof leads to a different root for the old tree.
    #[error("consistency proof does not lead to the old tree's root")]
    OldRootMismatch,
    /// The consistency proof leads to a different root for the new tree.
    #[error("consistency proof does not lead to the new tree's root")]
    NewRootMismatch,
}

/// The right edge of a Merkle tree: the roots of its perfect subtrees, largest (leftmost)
/// first, one per set bit of the size. Enough to append leaves and compute the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `hashes[i]` is the node `Frontier::node_ids(size)[i]`.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root (RFC 9162 MTH); [`EMPTY_ROOT`] when empty. At most log₂ n hashes.
    pub fn root(&self) -> Hash {
        let Some((last, rest)) = self.hashes.split_last() else {
            return EMPTY_ROOT;
        };
        rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc))
    }

    /// Appends a leaf hash and returns the complete subtree nodes this creates, as
    /// `(level, index, hash)`, lowest level first: the leaf itself at `(0, old size)`,
    /// then one node per level it completes. Store them all.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        let mut created = vec![(level, index, hash)];
        while index & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a frontier holds one hash per set bit of its size");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            created.push((level, index, hash));
        }
        self.hashes.push(hash);
        self.size += 1;
        created
    }

    /// The nodes on the right edge of a tree of `size` leaves, leftmost first: what
    /// [`Frontier::from_nodes`] fetches, in that order.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        perfect_nodes(0, size, &mut ids);
        ids
    }

    /// Rebuilds the frontier of a tree of `size` leaves from its stored complete nodes,
    /// fetching exactly the `size.count_ones()` nodes of [`Frontier::node_ids`].
    pub fn from_nodes(size: u64, mut get: impl FnMut(u8, u64) -> Hash) -> Self {
        let hashes = Self::node_ids(size)
            .into_iter()
            .map(|(level, index)| get(level, index))
            .collect();
        Self { size, hashes }
    }

    /// The right-edge nodes with their addresses, leftmost first.
    pub fn nodes(&self) -> Vec<(u8, u64, Hash)> {
        Self::node_ids(self.size)
            .into_iter()
            .zip(&self.hashes)
            .map(|((level, index), hash)| (level, index, *hash))
            .collect()
    }
}

/// The audit path proving leaf `index` is in the tree of `size` leaves (RFC 9162
/// §2.1.3.1), deepest sibling first, computed from stored complete nodes.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    mut get: impl FnMut(u8, u64) -> Hash,
) -> Result<Vec<Hash>, ProofError> {
    Ok(inclusion_ranges(index, size)?
        .into_iter()
        .map(|(lo, hi)| subtree_hash(lo, hi, &mut get))
        .collect())
}

/// The stored nodes [`inclusion_proof`] fetches for these arguments, in order.
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError> {
    let mut ids = Vec::new();
    for (lo, hi) in inclusion_ranges(index, size)? {
        perfect_nodes(lo, hi, &mut ids);
    }
    Ok(ids)
}

/// The proof that the tree of `m` leaves is a prefix of the tree of `n` leaves (RFC 9162
/// §2.1.4.1), computed from stored complete nodes. Empty when `m` is 0 or `m == n`.
pub fn consistency_proof(
    m: u64,
    n: u64,
    mut get: impl FnMut(u8, u64) -> Hash,
) -> Result<Vec<Hash>, ProofError> {
    Ok(consistency_ranges(m, n)?
        .into_iter()
        .map(|(lo, hi)| subtree_hash(lo, hi, &mut get))
        .collect())
}

/// The stored nodes [`consistency_proof`] fetches for these arguments, in order.
pub fn consistency_proof_nodes(m: u64, n: u64) -> Result<Vec<NodeId>, ProofError> {
    let mut ids = Vec::new();
    for (lo, hi) in consistency_ranges(m, n)? {
        perfect_nodes(lo, hi, &mut ids);
    }
    Ok(ids)
}

/// Checks that `proof` shows the leaf hash `leaf` at `index` in the tree of `size` leaves
/// whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // RFC 9162 §2.1.3.2 steps 2-5. Its own length checks (`s` running out early or late)
    // cannot fire after the check above; they stay as the RFC's belt and braces.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `m` leaves with root `old_root` is a prefix of
/// the tree of `n` leaves with root `new_root` (RFC 9162 §2.1.4.2). With `m == n` the
/// proof must be empty and the roots equal; with `m == 0` the proof must be empty and
/// `old_root` must be [`EMPTY_ROOT`].
pub fn verify_consistency(
    m: u64,
    n: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if m > n {
        return Err(ProofError::SizesOutOfOrder { old: m, new: n });
    }
    let expected = consistency_proof_len(m, n);
    let wrong_length = ProofError::WrongLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if m == 0 {
        return if *old_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    if m == n {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::NewRootMismatch)
        };
    }
    // Step 2: a power-of-two old tree is itself a node of the new one; its root seeds
    // the computation. Otherwise the proof's first hash does.
    let (seed, rest) = if m.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    // Steps 3-7 (the length checks inside cannot fire after the one above).
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The largest power of two strictly smaller than `n` (n ≥ 2): where MTH splits.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// The length of the audit path for leaf `index` in a tree of `size` (index < size): one
/// hash per level below where the leaf's path leaves the right edge, plus one per left
/// sibling on the right edge above it.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The length of the consistency proof from `m` to `n` leaves (m ≤ n).
fn consistency_proof_len(m: u64, n: u64) -> usize {
    if m == 0 || m == n {
        return 0;
    }
    // The path of the old tree's last leaf, less the levels inside the perfect subtree
    // the old tree ends with, plus that subtree's own hash unless it is the whole old tree.
    let inner = u64::BITS - ((m - 1) ^ (n - 1)).leading_zeros();
    let border = (m - 1).checked_shr(inner).unwrap_or(0).count_ones();
    let seed = u32::from(!m.is_power_of_two());
    (inner - m.trailing_zeros() + border + seed) as usize
}

/// The leaf ranges `[lo, hi)` whose MTH make up PATH(index, D[0:size]), in proof order.
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi) = (0, size);
    let mut ranges = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The leaf ranges `[lo, hi)` whose MTH make up PROOF(m, D[0:n]), in proof order.
fn consistency_ranges(m: u64, n: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if m > n {
        return Err(ProofError::SizesOutOfOrder { old: m, new: n });
    }
    if m == 0 || m == n {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b) with b = (lo == 0); here lo < m <= hi throughout.
    let (mut lo, mut hi) = (0, n);
    let mut ranges = Vec::new();
    while m != hi {
        let k = split(hi - lo);
        if m <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    if lo != 0 {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    Ok(ranges)
}

/// Appends the perfect aligned subtrees tiling `[lo, hi)`, largest first. For a subtree of
/// the RFC 9162 tree (lo aligned to the largest power of two ≤ hi − lo, which every range
/// built here is), these are stored nodes and folding them from the right gives its MTH.
fn perfect_nodes(mut lo: u64, hi: u64, ids: &mut Vec<NodeId>) {
    while lo < hi {
        let level = (hi - lo).ilog2();
        debug_assert_eq!(lo % (1 << level), 0, "range is not a subtree");
        ids.push((level as u8, lo >> level));
        lo += 1 << level;
    }
}

/// The MTH of the subtree over leaves `[lo, hi)` from its stored perfect nodes.
fn subtree_hash(lo: u64, hi: u64, get: &mut impl FnMut(u8, u64) -> Hash) -> Hash {
    let mut ids = Vec::new();
    perfect_nodes(lo, hi, &mut ids);
    let hashes: Vec<Hash> = ids.into_iter().map(|(l, i)| get(l, i)).collect();
    let (last, rest) = hashes
        .split_last()
        .expect("a subtree has at least one leaf");
    rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc))
}

/// The aligned perfect subtrees tiling leaves `[lo, hi)`, left to right: from `lo`, each
/// time the largest `2^L` leaves that start at a multiple of `2^L` and end by `hi`. Each
/// is a complete node of any tree of at least `hi` leaves, so it is stored.
pub fn tiles(mut lo: u64, hi: u64) -> Vec<NodeId> {
    let mut ids = Vec::new();
    while lo < hi {
        let aligned = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let level = aligned.min((hi - lo).ilog2());
        ids.push((level as u8, lo >> level));
        lo += 1 << level;
    }
    ids
}

/// The stored nodes that, with the leaves `[first, end)`, determine the root of the tree
/// of `size` leaves: those tiling `[0, first)` and those tiling `[end, size)`. A range
/// proof for the run of leaves, as an archive file carries it.
pub fn range_proof_nodes(
    first: u64,
    end: u64,
    size: u64,
) -> Result<(Vec<NodeId>, Vec<NodeId>), ProofError> {
    if first >= end || end > size {
        return Err(ProofError::IndexOutOfRange {
            index: end.max(first),
            size,
        });
    }
    Ok((tiles(0, first), tiles(end, size)))
}

/// Checks that the leaf hashes `leaves`, at `first, first + 1, …`, are those of the tree
/// of `size` leaves whose root is `root`, given the hashes of [`range_proof_nodes`]
/// (`left` tiling what precedes them, `right` what follows), by recomputing the root.
pub fn verify_range(
    first: u64,
    leaves: &[Hash],
    size: u64,
    left: &[Hash],
    right: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let end = first.saturating_add(leaves.len() as u64);
    let (left_ids, right_ids) = range_proof_nodes(first, end, size)?;
    if left.len() != left_ids.len() || right.len() != right_ids.len() {
        return Err(ProofError::WrongLength {
            expected: left_ids.len() + right_ids.len(),
            actual: left.len() + right.len(),
        });
    }
    let mut known: std::collections::HashMap<NodeId, Hash> = left_ids
        .into_iter()
        .zip(left.iter().copied())
        .chain(right_ids.into_iter().zip(right.iter().copied()))
        .collect();
    known.extend((first..end).map(|i| (0u8, i)).zip(leaves.iter().copied()));
    match range_mth(0, size, &known) {
        Some(r) if r == *root => Ok(()),
        _ => Err(ProofError::RootMismatch),
    }
}

/// MTH of leaves `[lo, hi)` from known nodes, splitting as RFC 9162 does until a range is
/// a known node; `None` if some leaf is covered by nothing known.
fn range_mth(lo: u64, hi: u64, known: &std::collections::HashMap<NodeId, Hash>) -> Option<Hash> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros() as u8;
        if let Some(h) = known.get(&(level, lo >> level)) {
            return Some(*h);
        }
        if n == 1 {
            return None;
        }
    }
    let k = split(n);
    Some(node_hash(
        &range_mth(lo, lo + k, known)?,
        &range_mth(lo + k, hi, known)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    use crate::domain::digest::hex;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    // ---- An independent reference, straight from the RFC text over raw leaf data ----

    fn sha(parts: &[&[u8]]) -> Hash {
        let mut s = Sha256::new();
        for p in parts {
            s.update(p);
        }
        s.finalize().into()
    }

    /// MTH over leaf hashes, splitting by a linear search for k.
    fn ref_mth(d: &[Hash]) -> Hash {
        let n = d.len();
        if n == 0 {
            return sha(&[]);
        }
        if n == 1 {
            return d[0];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        sha(&[&[1], &ref_mth(&d[..k]), &ref_mth(&d[k..])])
    }

    /// PATH(m, D[n]), RFC 9162 §2.1.3.1.
    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    /// SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1.
    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![ref_mth(d)] };
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    /// For PATH(index, D[size]): per proof hash, whether the sibling is on the right. This
    /// is the whole of what a verifier does with (index, size) besides the final compare.
    fn ref_path_shape(index: u64, size: u64) -> Vec<bool> {
        if size == 1 {
            return vec![];
        }
        let mut k = 1;
        while k * 2 < size {
            k *= 2;
        }
        let mut shape = if index < k {
            ref_path_shape(index, k)
        } else {
            ref_path_shape(index - k, size - k)
        };
        shape.push(index < k);
        shape
    }

    /// For PROOF(m, D[n]) (0 < m < n): whether the old root seeds the computation, and per
    /// proof hash whether it lies inside the old tree.
    fn ref_consistency_shape(m: u64, n: u64) -> (bool, Vec<bool>) {
        fn sub(m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<bool>) {
            if m == hi - lo {
                if !b {
                    out.push(true);
                }
                return;
            }
            let mut k = 1;
            while k * 2 < hi - lo {
                k *= 2;
            }
            if m <= k {
                sub(m, lo, lo + k, b, out);
                out.push(false);
            } else {
                sub(m - k, lo + k, hi, false, out);
                out.push(true);
            }
        }
        let mut out = Vec::new();
        sub(m, 0, n, true, &mut out);
        (m.is_power_of_two(), out)
    }

    // ---- A node store: every complete node of a tree of MAX leaves ----

    const MAX: u64 = 512;

    struct Store {
        leaves: Vec<Hash>,
        /// levels[l][i] = node (l, i).
        levels: Vec<Vec<Hash>>,
        /// roots[n] = root of the first n leaves.
        roots: Vec<Hash>,
    }

    impl Store {
        fn new(n: u64) -> Self {
            let mut f = Frontier::new();
            let mut levels: Vec<Vec<Hash>> = Vec::new();
            let mut leaves = Vec::new();
            let mut roots = vec![EMPTY_ROOT];
            for i in 0..n {
                let leaf = leaf_hash(&i.to_be_bytes());
                leaves.push(leaf);
                for (l, k, hash) in f.push(leaf) {
                    let l = usize::from(l);
                    if levels.len() <= l {
                        levels.push(Vec::new());
                    }
                    assert_eq!(levels[l].len() as u64, k, "nodes arrive in order");
                    levels[l].push(hash);
                }
                roots.push(f.root());
            }
            Self {
                leaves,
                levels,
                roots,
            }
        }

        /// A getter for a tree of `size` leaves that refuses nodes not complete in it
        /// and counts fetches.
        fn getter(&self, size: u64, count: &mut usize) -> impl FnMut(u8, u64) -> Hash {
            move |l, i| {
                assert!(
                    (i + 1) << l <= size,
                    "node ({l}, {i}) is not complete at {size}"
                );
                *count += 1;
                self.levels[usize::from(l)][i as usize]
            }
        }

        fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
            let mut fetches = 0;
            let proof = inclusion_proof(index, size, self.getter(size, &mut fetches)).unwrap();
            assert!(
                fetches <= fetch_bound(size),
                "{fetches} fetches for {index}/{size}"
            );
            assert_eq!(
                fetches,
                inclusion_proof_nodes(index, size).unwrap().len(),
                "node list for {index}/{size}"
            );
            proof
        }

        fn consistency(&self, m: u64, n: u64) -> Vec<Hash> {
            let mut fetches = 0;
            let proof = consistency_proof(m, n, self.getter(n, &mut fetches)).unwrap();
            assert!(fetches <= fetch_bound(n), "{fetches} fetches for {m}->{n}");
            assert_eq!(
                fetches,
                consistency_proof_nodes(m, n).unwrap().len(),
                "node list for {m}->{n}"
            );
            proof
        }
    }

    /// 2·⌈log₂ n⌉ + 1.
    fn fetch_bound(n: u64) -> usize {
        let log = if n <= 1 {
            0
        } else {
            u64::BITS - (n - 1).leading_zeros()
        };
        2 * log as usize + 1
    }

    static STORE: LazyLock<Store> = LazyLock::new(|| Store::new(MAX));

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut h = *h;
        h[bit / 8 % 32] ^= 1 << (bit % 8);
        h
    }

    // ---- Known answers: the RFC 6962 test leaves ----

    const TEST_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    fn test_leaves() -> Vec<Hash> {
        TEST_LEAVES
            .iter()
            .map(|s| sha(&[&[0], &unhex(s)]))
            .collect()
    }

    #[test]
    fn hashes_follow_rfc_9162() {
        assert_eq!(EMPTY_ROOT, sha(&[]));
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
        for s in TEST_LEAVES {
            assert_eq!(leaf_hash(&unhex(s)), sha(&[&[0], &unhex(s)]));
        }
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        assert_eq!(node_hash(&a, &b), sha(&[&[1], &a, &b]));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    #[test]
    fn known_roots_of_the_test_leaves() {
        // google/certificate-transparency MerkleTreeTest.cc, transparency-dev/merkle.
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = test_leaves();
        let mut f = Frontier::new();
        for (n, want) in (1..=8).zip(expected) {
            f.push(leaves[n - 1]);
            // The constant is checked against the reference first, then the module.
            assert_eq!(hex(&ref_mth(&leaves[..n])), want, "reference, size {n}");
            assert_eq!(hex(&root(&leaves[..n])), want, "root, size {n}");
            assert_eq!(hex(&f.root()), want, "frontier, size {n}");
        }
    }

    fn test_store() -> Store {
        let leaves = test_leaves();
        let mut f = Frontier::new();
        let mut levels: Vec<Vec<Hash>> = vec![Vec::new(); 4];
        let mut roots = vec![EMPTY_ROOT];
        for leaf in &leaves {
            for (l, _, hash) in f.push(*leaf) {
                levels[usize::from(l)].push(hash);
            }
            roots.push(f.root());
        }
        Store {
            leaves,
            levels,
            roots,
        }
    }

    #[test]
    fn known_inclusion_proofs_of_the_test_leaves() {
        // (index, size, path), from transparency-dev/merkle and the CT test suite.
        let cases: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let store = test_store();
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let d = &store.leaves[..size as usize];
            assert_eq!(
                ref_path(index as usize, d),
                want,
                "reference {index}/{size}"
            );
            assert_eq!(store.inclusion(index, size), want, "{index}/{size}");
            let leaf = store.leaves[index as usize];
            verify_inclusion(&leaf, index, size, &want, &store.roots[size as usize]).unwrap();
        }
    }

    #[test]
    fn known_consistency_proofs_of_the_test_leaves() {
        // (m, n, proof), from transparency-dev/merkle and the CT test suite.
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        let store = test_store();
        for (m, n, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let d = &store.leaves[..n as usize];
            assert_eq!(
                ref_subproof(m as usize, d, true),
                want,
                "reference {m}->{n}"
            );
            assert_eq!(store.consistency(m, n), want, "{m}->{n}");
            let (old, new) = (&store.roots[m as usize], &store.roots[n as usize]);
            verify_consistency(m, n, old, new, &want).unwrap();
        }
    }

    #[test]
    fn proofs_match_the_reference_up_to_64() {
        let store = &*STORE;
        for n in 1..=64u64 {
            let d = &store.leaves[..n as usize];
            assert_eq!(root(d), ref_mth(d), "root {n}");
            assert_eq!(store.roots[n as usize], ref_mth(d), "frontier root {n}");
            for i in 0..n {
                assert_eq!(store.inclusion(i, n), ref_path(i as usize, d), "{i}/{n}");
                let m = i + 1;
                let want = ref_subproof(m as usize, d, true);
                assert_eq!(store.consistency(m, n), want, "{m}->{n}");
            }
        }
    }

    #[test]
    fn every_inclusion_proof_up_to_512_verifies() {
        let store = &*STORE;
        for size in 1..=MAX {
            let r = &store.roots[size as usize];
            for index in 0..size {
                let proof = store.inclusion(index, size);
                let leaf = &store.leaves[index as usize];
                verify_inclusion(leaf, index, size, &proof, r).unwrap();
            }
        }
    }

    #[test]
    fn every_consistency_proof_up_to_512_verifies() {
        let store = &*STORE;
        for n in 1..=MAX {
            let new = &store.roots[n as usize];
            for m in 0..=n {
                let proof = store.consistency(m, n);
                verify_consistency(m, n, &store.roots[m as usize], new, &proof).unwrap();
            }
        }
    }

    /// Every way of spoiling a valid inclusion proof: each proof hash, the leaf and the
    /// root with a bit flipped; a hash removed or added anywhere; another index; another
    /// size (which passes exactly when the path has the same shape, see the module doc).
    /// Returns how many other sizes passed.
    fn spoil_inclusion(store: &Store, index: u64, size: u64, bit: usize) -> usize {
        let proof = store.inclusion(index, size);
        let leaf = &store.leaves[index as usize];
        let r = &store.roots[size as usize];
        let verify = verify_inclusion;
        verify(leaf, index, size, &proof, r).unwrap();
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i] = flip(&p[i], bit + i);
            assert_eq!(
                verify(leaf, index, size, &p, r),
                Err(ProofError::RootMismatch)
            );
            let mut p = proof.clone();
            p.remove(i);
            assert!(matches!(
                verify(leaf, index, size, &p, r),
                Err(ProofError::WrongLength { .. })
            ));
        }
        for i in 0..=proof.len() {
            let mut p = proof.clone();
            p.insert(i, proof.get(i).copied().unwrap_or(*r));
            assert!(matches!(
                verify(leaf, index, size, &p, r),
                Err(ProofError::WrongLength { .. })
            ));
        }
        let bad = Err(ProofError::RootMismatch);
        assert_eq!(verify(&flip(leaf, bit), index, size, &proof, r), bad);
        assert_eq!(verify(leaf, index, size, &proof, &flip(r, bit)), bad);
        assert_eq!(
            verify(leaf, index, size, &proof, &store.roots[size as usize - 1]),
            bad
        );
        assert!(verify(leaf, size, size, &proof, r).is_err());
        for other in [index.wrapping_sub(1), index + 1, index ^ 1, index ^ 2] {
            if other < size && other != index {
                assert!(verify(leaf, other, size, &proof, r).is_err(), "{other}");
            }
        }
        let shape = ref_path_shape(index, size);
        let mut passed = 0;
        for other in [size - 1, size + 1, size * 2, size.next_power_of_two()] {
            if other > index && other != size {
                let same = ref_path_shape(index, other) == shape;
                let ok = verify(leaf, index, other, &proof, r).is_ok();
                assert_eq!(ok, same, "{index}/{size} checked as {index}/{other}");
                passed += usize::from(ok);
            }
        }
        passed
    }

    /// The same for consistency proofs: each proof hash and each root with a bit flipped,
    /// a hash removed or added anywhere, another old or new size.
    fn spoil_consistency(store: &Store, m: u64, n: u64, bit: usize) -> usize {
        let proof = store.consistency(m, n);
        let (old, new) = (&store.roots[m as usize], &store.roots[n as usize]);
        verify_consistency(m, n, old, new, &proof).unwrap();
        for i in 0..proof.len() {
            let mut p = proof.clone();
            p[i] = flip(&p[i], bit + i);
            assert!(
                verify_consistency(m, n, old, new, &p).is_err(),
                "{m}->{n} #{i}"
            );
            let mut p = proof.clone();
            p.remove(i);
            assert!(matches!(
                verify_consistency(m, n, old, new, &p),
                Err(ProofError::WrongLength { .. })
            ));
        }
        for i in 0..=proof.len() {
            let mut p = proof.clone();
            p.insert(i, proof.get(i).copied().unwrap_or(*old));
            assert!(matches!(
                verify_consistency(m, n, old, new, &p),
                Err(ProofError::WrongLength { .. })
            ));
        }
        assert!(verify_consistency(m, n, &flip(old, bit), new, &proof).is_err());
        assert!(verify_consistency(m, n, old, &flip(new, bit), &proof).is_err());
        if m < n {
            // The wrong tree's root, of the right size.
            let other = &store.roots[n as usize - 1];
            assert!(verify_consistency(m, n, old, other, &proof).is_err());
            let other = &store.roots[m as usize - 1];
            assert!(verify_consistency(m, n, other, new, &proof).is_err());
        }
        let shape = (m < n).then(|| ref_consistency_shape(m, n));
        let mut passed = 0;
        let others = [
            (m - 1, n),
            (m + 1, n),
            (m, n - 1),
            (m, n + 1),
            (m, n * 2),
            (m + 1, n + 1),
        ];
        for (m2, n2) in others {
            if (m2, n2) == (m, n) || m2 > n2 {
                continue;
            }
            let ok = verify_consistency(m2, n2, old, new, &proof).is_ok();
            let same = if m2 == 0 {
                false // old is never the empty root here
            } else if m2 == n2 {
                proof.is_empty() && old == new
            } else {
                shape == Some(ref_consistency_shape(m2, n2))
            };
            assert_eq!(ok, same, "{m}->{n} checked as {m2}->{n2}");
            passed += usize::from(ok);
        }
        passed
    }

    #[test]
    fn spoiled_proofs_fail_exhaustively_up_to_128() {
        let store = &*STORE;
        let (mut inclusion_passes, mut consistency_passes) = (0, 0);
        for n in 1..=128u64 {
            for i in 0..n {
                let bit = (i * 97 + n * 31) as usize;
                inclusion_passes += spoil_inclusion(store, i, n, bit);
                consistency_passes += spoil_consistency(store, i + 1, n, bit);
            }
        }
        // Size is not bound by a proof (module doc): make sure the test saw it happen.
        assert!(inclusion_passes > 0 && consistency_passes > 0);
    }

    fn size_strategy() -> impl Strategy<Value = u64> {
        prop_oneof![
            1..=MAX,
            (0..=9u32, -1..=1i64).prop_map(|(e, d)| (2u64.pow(e) as i64 + d).clamp(1, 512) as u64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn spoiled_proofs_fail_up_to_512(
            n in size_strategy(),
            m_pick in size_strategy(),
            bit in 0..256usize,
        ) {
            let m = (m_pick - 1) % n + 1;
            spoil_inclusion(&STORE, m - 1, n, bit);
            spoil_inclusion(&STORE, n - m, n, bit);
            spoil_consistency(&STORE, m, n, bit);
        }
    }

    #[test]
    fn empty_and_equal_trees() {
        let store = &*STORE;
        let r5 = store.roots[5];
        assert_eq!(consistency_proof(0, 5, |_, _| unreachable!()), Ok(vec![]));
        assert_eq!(consistency_proof(5, 5, |_, _| unreachable!()), Ok(vec![]));
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &r5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 5, &r5, &r5, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(verify_consistency(5, 5, &r5, &r5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &r5, &store.roots[4], &[]),
            Err(ProofError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(5, 5, &r5, &r5, &[r5]),
            Err(ProofError::WrongLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            verify_consistency(6, 5, &r5, &r5, &[]),
            Err(ProofError::SizesOutOfOrder { old: 6, new: 5 })
        );
        assert_eq!(
            consistency_proof(6, 5, |_, _| unreachable!()),
            Err(ProofError::SizesOutOfOrder { old: 6, new: 5 })
        );
        let oob = ProofError::IndexOutOfRange { index: 5, size: 5 };
        assert_eq!(inclusion_proof(5, 5, |_, _| unreachable!()), Err(oob));
        assert_eq!(verify_inclusion(&r5, 5, 5, &[], &r5), Err(oob));
        assert_eq!(
            inclusion_proof(0, 0, |_, _| unreachable!()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        // A one-leaf tree's root is its leaf.
        let leaf = store.leaves[0];
        assert_eq!(inclusion_proof(0, 1, |_, _| unreachable!()), Ok(vec![]));
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
    }

    #[test]
    fn huge_trees_need_few_nodes_and_do_not_overflow() {
        let sizes = [
            u64::MAX,
            u64::MAX - 1,
            (1 << 63) + 12345,
            1 << 63,
            (1 << 40) + 7,
        ];
        for n in sizes {
            for m in [1, 2, 3, n / 3, n / 2, n - 2, n - 1] {
                let index = m - 1;
                for ids in [
                    inclusion_proof_nodes(index, n).unwrap(),
                    consistency_proof_nodes(m, n).unwrap(),
                ] {
                    assert!(ids.len() <= fetch_bound(n), "{m}/{n}: {}", ids.len());
                    assert!(ids.iter().all(|&(l, i)| (i + 1) << l <= n));
                }
                // Lengths agree between builder and verifier, and nothing overflows.
                let proof = inclusion_proof(index, n, |_, _| [7; 32]).unwrap();
                assert_eq!(proof.len(), inclusion_proof_len(index, n));
                assert_eq!(
                    verify_inclusion(&[7; 32], index, n, &proof, &[0; 32]),
                    Err(ProofError::RootMismatch)
                );
                let proof = consistency_proof(m, n, |_, _| [7; 32]).unwrap();
                assert_eq!(proof.len(), consistency_proof_len(m, n));
                assert!(matches!(
                    verify_consistency(m, n, &[7; 32], &[0; 32], &proof),
                    Err(ProofError::OldRootMismatch | ProofError::NewRootMismatch)
                ));
            }
            let ids = Frontier::node_ids(n);
            assert_eq!(ids.len() as u32, n.count_ones());
        }
    }

    #[test]
    fn frontier_grows_and_rebuilds_up_to_1000() {
        let leaves: Vec<Hash> = (0..1000u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        let mut levels: Vec<Vec<Hash>> = Vec::new();
        let mut stored = 0;
        for (n, leaf) in (1u64..).zip(&leaves) {
            let created = f.push(*leaf);
            // Exactly the nodes completed by leaf n - 1: those ending at n.
            let want: Vec<NodeId> = (0..=n.trailing_zeros() as u8)
                .map(|l| (l, (n >> l) - 1))
                .collect();
            let got: Vec<NodeId> = created.iter().map(|&(l, i, _)| (l, i)).collect();
            assert_eq!(got, want, "nodes created by leaf {}", n - 1);
            for (l, i, hash) in created {
                let span = 1usize << l;
                let lo = i as usize * span;
                assert_eq!(hash, root(&leaves[lo..lo + span]), "node ({l}, {i})");
                let l = usize::from(l);
                if levels.len() <= l {
                    levels.push(Vec::new());
                }
                levels[l].push(hash);
                stored += 1;
            }
            assert_eq!(stored, 2 * n - u64::from(n.count_ones()));
            assert_eq!(f.size(), n);
            assert_eq!(f.root(), root(&leaves[..n as usize]), "root at {n}");
            let mut fetches = 0;
            let rebuilt = Frontier::from_nodes(n, |l, i| {
                assert!((i + 1) << l <= n);
                fetches += 1;
                levels[usize::from(l)][i as usize]
            });
            assert_eq!(fetches, n.count_ones());
            assert_eq!(rebuilt, f, "rebuilt at {n}");
            assert_eq!(
                f.nodes()
                    .iter()
                    .map(|&(l, i, _)| (l, i))
                    .collect::<Vec<_>>(),
                Frontier::node_ids(n)
            );
            // A rebuilt frontier keeps growing like the original.
            if n % 97 == 0 {
                let mut a = rebuilt.clone();
                let mut b = f.clone();
                for leaf in &leaves[..5] {
                    assert_eq!(a.push(*leaf), b.push(*leaf));
                }
                assert_eq!(a.root(), b.root());
            }
        }
        assert_eq!(
            Frontier::from_nodes(0, |_, _| unreachable!()),
            Frontier::new()
        );
    }

    #[test]
    fn range_proofs_verify_every_run_of_leaves_and_nothing_else() {
        for size in 1..=40u64 {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let mut frontier = Frontier::new();
            let mut nodes = std::collections::HashMap::new();
            for l in &leaves {
                nodes.extend(frontier.push(*l).into_iter().map(|(l, i, h)| ((l, i), h)));
            }
            let root = ref_mth(&leaves);
            assert_eq!(frontier.root(), root);
            for first in 0..size {
                for end in first + 1..=size {
                    let (left, right) = range_proof_nodes(first, end, size).unwrap();
                    let get = |ids: Vec<NodeId>| -> Vec<Hash> {
                        ids.iter().map(|id| nodes[id]).collect()
                    };
                    let (left, right) = (get(left), get(right));
                    let run = &leaves[first as usize..end as usize];
                    verify_range(first, run, size, &left, &right, &root).unwrap();
                    // Another leaf, another place or a missing hash fails. (A wrong size
                    // can pass, as for any audit path: the signed note binds the size.)
                    let mut bad = run.to_vec();
                    bad[0][0] ^= 1;
                    assert!(verify_range(first, &bad, size, &left, &right, &root).is_err());
                    if first > 0 {
                        assert!(verify_range(first - 1, run, size, &left, &right, &root).is_err());
                    }
                    if let Some((_, rest)) = right.split_first() {
                        assert!(verify_range(first, run, size, &left, rest, &root).is_err());
                    }
                }
            }
        }
    }
}
