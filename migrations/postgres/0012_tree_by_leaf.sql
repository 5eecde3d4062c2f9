-- Tree nodes keyed by the leaf whose append completed them, then by level. Keyed by
-- (level, idx), the nodes an append completes went to the right edge of each level's
-- range in the key's index, a page apiece; keyed this way they are neighbours at its
-- end. Node (level, idx) spans the leaves [idx·2^level, (idx+1)·2^level), so its leaf is
-- (idx+1)·2^level - 1, and the nodes that the leaves [a, b) complete are one key range.
CREATE TABLE audit_tree_by_leaf (
    leaf BIGINT NOT NULL,
    level BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    CONSTRAINT audit_tree_key PRIMARY KEY (leaf, level)
);
INSERT INTO audit_tree_by_leaf (leaf, level, hash)
    SELECT ((idx + 1) << level::integer) - 1, level, hash FROM audit_tree ORDER BY 1, 2;
DROP TABLE audit_tree;
ALTER TABLE audit_tree_by_leaf RENAME TO audit_tree;

CREATE TRIGGER audit_tree_append_only BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION keeptrack_append_only();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION keeptrack_append_only();
