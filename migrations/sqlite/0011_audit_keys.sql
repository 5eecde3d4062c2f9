-- The query indexes move off the write path. An audited write stored the entry's row
-- and five index entries on five more pages in the same commit; on SQLite a commit's
-- cost grows with its pages, and those five made an audited write cost about 1.5× a
-- bare one. Now the writer copies entries' keys here in batches (every few hundred
-- entries, or when it has been idle a moment), where one page takes the keys of many
-- entries. Queries read this table's indexes for the entries it holds and scan the few
-- entries after it in the log itself, so they still see every committed entry.
-- The keys are copies of the log's own columns; `audit verify` compares them.
CREATE TABLE audit_keys (
    idx INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id BIGINT,
    record_type TEXT,
    record_id BIGINT
);
INSERT INTO audit_keys (idx, ts, category, action, actor_id, record_type, record_id)
    SELECT idx, ts, category, action, actor_id, record_type, record_id
    FROM audit_log ORDER BY idx;

DROP INDEX audit_log_ts;
DROP INDEX audit_log_actor;
DROP INDEX audit_log_category;
DROP INDEX audit_log_action;
DROP INDEX audit_log_record;

-- Newest first within each filter; the rowid (idx) ends every key, for keyset pages.
CREATE INDEX audit_keys_ts ON audit_keys (ts);
CREATE INDEX audit_keys_actor ON audit_keys (actor_id, ts);
CREATE INDEX audit_keys_category ON audit_keys (category, ts);
CREATE INDEX audit_keys_action ON audit_keys (action, ts);
CREATE INDEX audit_keys_record ON audit_keys (record_type, record_id, ts);

-- Keys are only ever added: a changed or removed key would hide its entry from queries.
CREATE TRIGGER audit_keys_no_update BEFORE UPDATE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
CREATE TRIGGER audit_keys_no_delete BEFORE DELETE ON audit_keys
BEGIN SELECT RAISE(ABORT, 'audit_keys is append-only'); END;
