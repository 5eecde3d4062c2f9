-- An entry's index becomes the table's own key (INTEGER PRIMARY KEY is SQLite's rowid):
-- entries are stored in index order and found by it directly, with no separate index on
-- idx to write at every append and to look through at every read. The query indexes
-- end in the rowid implicitly, so they keep their (..., idx) order without naming it.
CREATE TABLE audit_log_by_index (
    idx INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id BIGINT,
    record_type TEXT,
    record_id BIGINT,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
INSERT INTO audit_log_by_index (idx, ts, category, action, actor_kind, actor_id,
                                record_type, record_id, entry, leaf_hash)
    SELECT idx, ts, category, action, actor_kind, actor_id, record_type, record_id, entry,
           leaf_hash
    FROM audit_log ORDER BY idx;
DROP TABLE audit_log;
ALTER TABLE audit_log_by_index RENAME TO audit_log;

CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_actor ON audit_log (actor_id, ts);
CREATE INDEX audit_log_category ON audit_log (category, ts);
CREATE INDEX audit_log_action ON audit_log (action, ts);
CREATE INDEX audit_log_record ON audit_log (record_type, record_id, ts);

-- The guards of 0001 and 0006, unchanged.
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
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
