-- Tree nodes keyed by the leaf whose append completed them, then by level. Keyed by
-- (level, idx), the nodes an append completes went to the right edge of each level's
-- range, a page apiece; keyed this way they are neighbours at the end of the table, so
-- an append writes one page of the tree, not one per level. Node (level, idx) spans the
-- leaves [idx·2^level, (idx+1)·2^level), so its leaf is (idx+1)·2^level - 1, and the
-- nodes that the leaves [a, b) complete are one range of the key.
CREATE TABLE audit_tree_by_leaf (
    leaf BIGINT NOT NULL,
    level BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (leaf, level)
) WITHOUT ROWID;
INSERT INTO audit_tree_by_leaf (leaf, level, hash)
    SELECT ((idx + 1) << level) - 1, level, hash FROM audit_tree ORDER BY 1, 2;
DROP TABLE audit_tree;
ALTER TABLE audit_tree_by_leaf RENAME TO audit_tree;

CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
