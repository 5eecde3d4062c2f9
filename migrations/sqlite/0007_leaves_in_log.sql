-- Level 0 of the Merkle tree is the entries' leaf hashes, which audit_log already keeps
-- beside each entry: audit_tree holds only the nodes above them from here on. That is
-- half its rows, half the tree's writes per append and half of what verify reads.
-- The table is also made WITHOUT ROWID: its key is its only index, so a node is one
-- b-tree entry to write and to read rather than two.
CREATE TABLE audit_tree_above_leaves (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
INSERT INTO audit_tree_above_leaves (level, idx, hash)
    SELECT level, idx, hash FROM audit_tree WHERE level > 0;
DROP TABLE audit_tree;
ALTER TABLE audit_tree_above_leaves RENAME TO audit_tree;

CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
