-- Archive runs: `keeptrack audit archive` (or the retention schedule) moved the bodies of
-- entries [from_idx, to_idx) into a signed archive file, signed at tree_size; the System
-- entry at entry_idx records the run. An archived entry keeps its row, its columns and its
-- leaf hash (the tree is unchanged); its `entry` is the empty blob, which no entry is.
CREATE TABLE audit_archive (
    id INTEGER PRIMARY KEY,
    from_idx BIGINT NOT NULL,
    to_idx BIGINT NOT NULL,
    entry_idx BIGINT NOT NULL,
    tree_size BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    file TEXT NOT NULL
);

CREATE TRIGGER audit_archive_no_update BEFORE UPDATE ON audit_archive
BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only'); END;
CREATE TRIGGER audit_archive_no_delete BEFORE DELETE ON audit_archive
BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only'); END;

-- The one UPDATE the log allows: emptying the body of an entry inside the newest archive
-- run while that run's entry is not yet under the head, which is so only inside the
-- transaction that appended it (the head moves at its commit), and leaving every other
-- column as it was. IS compares without NULLs, so no NULL can make the guard pass by.
DROP TRIGGER audit_log_no_update;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT COALESCE(
    OLD.entry IS NOT X'' AND NEW.entry IS X''
    AND NEW.idx IS OLD.idx AND NEW.ts IS OLD.ts AND NEW.category IS OLD.category
    AND NEW.action IS OLD.action AND NEW.actor_kind IS OLD.actor_kind
    AND NEW.actor_id IS OLD.actor_id AND NEW.record_type IS OLD.record_type
    AND NEW.record_id IS OLD.record_id AND NEW.leaf_hash IS OLD.leaf_hash
    AND EXISTS (
        SELECT 1 FROM audit_archive r
        WHERE r.id = (SELECT MAX(id) FROM audit_archive)
          AND OLD.idx >= r.from_idx AND OLD.idx < r.to_idx
          AND r.entry_idx >= (SELECT size FROM log_head WHERE id = 1)
    ),
    0
)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
