-- A record's entries form a chain, newest first: each entry names the one before it on
-- the same record (`prev_idx`), and `audit_heads` names each record's newest, as on
-- SQLite (0015 there), where history walks it instead of an index by record. Both
-- databases keep the same log; `audit verify` recomputes the chain from the entries'
-- own columns.
ALTER TABLE audit_log ADD COLUMN prev_idx BIGINT;

CREATE TABLE audit_heads (
    record_type TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    head BIGINT NOT NULL,
    PRIMARY KEY (record_type, record_id)
);

-- The existing log's links, written once, with the guard lifted for this transaction.
ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
UPDATE audit_log SET prev_idx = c.prev
FROM (
    SELECT idx, LAG(idx) OVER (PARTITION BY record_type, record_id ORDER BY idx) AS prev
    FROM audit_log WHERE record_type IS NOT NULL AND record_id IS NOT NULL
) AS c
WHERE audit_log.idx = c.idx AND c.prev IS NOT NULL;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;
INSERT INTO audit_heads (record_type, record_id, head)
    SELECT record_type, record_id, MAX(idx) FROM audit_log
    WHERE record_type IS NOT NULL AND record_id IS NOT NULL
    GROUP BY record_type, record_id;

-- The guard of 0006, which now keeps the link as well.
CREATE OR REPLACE FUNCTION keeptrack_audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND length(OLD.entry) > 0 AND length(NEW.entry) = 0
       AND ROW(NEW.idx, NEW.ts, NEW.category, NEW.action, NEW.actor_kind, NEW.actor_id,
               NEW.record_type, NEW.record_id, NEW.leaf_hash, NEW.prev_idx)
           IS NOT DISTINCT FROM
           ROW(OLD.idx, OLD.ts, OLD.category, OLD.action, OLD.actor_kind, OLD.actor_id,
               OLD.record_type, OLD.record_id, OLD.leaf_hash, OLD.prev_idx)
       AND EXISTS (
           SELECT 1 FROM audit_archive r
           WHERE r.id = (SELECT MAX(id) FROM audit_archive)
             AND OLD.idx >= r.from_idx AND OLD.idx < r.to_idx
             AND r.entry_idx >= (SELECT size FROM log_head WHERE id = 1)
       )
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

-- History keeps reading a record's entries off the index by record on the log (0015):
-- PostgreSQL walked the chain a fifth slower than it reads that index (PERFORMANCE.md).
