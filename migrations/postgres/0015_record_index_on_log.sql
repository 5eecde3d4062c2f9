-- PostgreSQL writes an entry's keys in the writer's transactions anyway, so its record
-- index can live on the log itself: a record's history then reads its entries with
-- their bodies off one index descent, where the keys' index gave only their numbers
-- and each entry was looked up again by number. The keys keep their other indexes.
CREATE INDEX audit_log_record ON audit_log (record_type, record_id, ts, idx);
DROP INDEX audit_keys_record;
