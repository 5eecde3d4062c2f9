-- A record's entries form a chain, newest first: each entry names the one before it on
-- the same record (`prev_idx`), and `audit_heads` names each record's newest. History
-- walks the chain by the log's own key, so no index by record is written at every
-- append: that index (in the keys' file since 0014) put every entry on a page of its own,
-- at random, and was most of what auditing cost a write. `audit verify` recomputes the
-- chain from the entries' own columns.
ALTER TABLE audit_log ADD COLUMN prev_idx BIGINT;

-- Each record's head is a column of its own row, which the write that logs a change
-- to it writes anyway: a table of heads put a page more in most commits, and SQLite
-- writes whole pages to its log. History reads them through one view.
ALTER TABLE clients ADD COLUMN audit_head BIGINT;
ALTER TABLE sessions ADD COLUMN audit_head BIGINT;
ALTER TABLE appointments ADD COLUMN audit_head BIGINT;
ALTER TABLE invoices ADD COLUMN audit_head BIGINT;
ALTER TABLE payments ADD COLUMN audit_head BIGINT;
ALTER TABLE users ADD COLUMN audit_head BIGINT;
ALTER TABLE security_groups ADD COLUMN audit_head BIGINT;
CREATE VIEW audit_heads (record_type, record_id, head) AS
    SELECT 'client', id, audit_head FROM clients WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'session', id, audit_head FROM sessions WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'appointment', id, audit_head FROM appointments
        WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'invoice', id, audit_head FROM invoices WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'payment', id, audit_head FROM payments WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'user', id, audit_head FROM users WHERE audit_head IS NOT NULL
    UNION ALL SELECT 'security_group', id, audit_head FROM security_groups
        WHERE audit_head IS NOT NULL;

-- The existing log's links, written once, with the guard lifted for this transaction.
DROP TRIGGER audit_log_no_update;
UPDATE audit_log SET prev_idx = c.prev
FROM (
    SELECT idx, LAG(idx) OVER (PARTITION BY record_type, record_id ORDER BY idx) AS prev
    FROM audit_log WHERE record_type IS NOT NULL AND record_id IS NOT NULL
) AS c
WHERE audit_log.idx = c.idx AND c.prev IS NOT NULL;
UPDATE clients SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'client'
    GROUP BY record_id
) AS n WHERE clients.id = n.record_id;
UPDATE sessions SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'session'
    GROUP BY record_id
) AS n WHERE sessions.id = n.record_id;
UPDATE appointments SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'appointment'
    GROUP BY record_id
) AS n WHERE appointments.id = n.record_id;
UPDATE invoices SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'invoice'
    GROUP BY record_id
) AS n WHERE invoices.id = n.record_id;
UPDATE payments SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'payment'
    GROUP BY record_id
) AS n WHERE payments.id = n.record_id;
UPDATE users SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'user'
    GROUP BY record_id
) AS n WHERE users.id = n.record_id;
UPDATE security_groups SET audit_head = n.head FROM (
    SELECT record_id, MAX(idx) AS head FROM audit_log WHERE record_type = 'security_group'
    GROUP BY record_id
) AS n WHERE security_groups.id = n.record_id;

-- The guard of 0008, which now keeps the link as well.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT COALESCE(
    OLD.entry IS NOT X'' AND NEW.entry IS X''
    AND NEW.idx IS OLD.idx AND NEW.ts IS OLD.ts AND NEW.category IS OLD.category
    AND NEW.action IS OLD.action AND NEW.actor_kind IS OLD.actor_kind
    AND NEW.actor_id IS OLD.actor_id AND NEW.record_type IS OLD.record_type
    AND NEW.record_id IS OLD.record_id AND NEW.leaf_hash IS OLD.leaf_hash
    AND NEW.prev_idx IS OLD.prev_idx
    AND EXISTS (
        SELECT 1 FROM audit_archive r
        WHERE r.id = (SELECT MAX(id) FROM audit_archive)
          AND OLD.idx >= r.from_idx AND OLD.idx < r.to_idx
          AND r.entry_idx >= (SELECT size FROM log_head WHERE id = 1)
    ),
    0
)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
