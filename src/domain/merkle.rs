//! RFC 9162 Merkle tree hashing and proofs over the audit log's leaves (being written).
