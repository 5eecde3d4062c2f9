-- The query indexes move off the write path (see the SQLite migration of the same
-- number): the writer copies entries' keys here in batches, and queries read this
-- table's indexes for the entries it holds and scan the few entries after it in the log
-- itself. The keys are copies of the log's own columns; `audit verify` compares them.
CREATE TABLE audit_keys (
    idx BIGINT PRIMARY KEY,
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

-- Newest first within each filter; the (ts, idx) tail serves keyset pagination.
CREATE INDEX audit_keys_ts ON audit_keys (ts, idx);
CREATE INDEX audit_keys_actor ON audit_keys (actor_id, ts, idx);
CREATE INDEX audit_keys_category ON audit_keys (category, ts, idx);
CREATE INDEX audit_keys_action ON audit_keys (action, ts, idx);
CREATE INDEX audit_keys_record ON audit_keys (record_type, record_id, ts, idx);

-- Keys are only ever added: a changed or removed key would hide its entry from queries.
CREATE TRIGGER audit_keys_no_update BEFORE UPDATE OR DELETE ON audit_keys
    FOR EACH ROW EXECUTE FUNCTION keeptrack_append_only();
CREATE TRIGGER audit_keys_no_truncate BEFORE TRUNCATE ON audit_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keeptrack_append_only();
