-- How many write transactions have taken the log's lock. On PostgreSQL every writer
-- counts its transaction here as it takes the lock, so a writer that finds the count one
-- past its own last knows nobody else wrote in between and may keep the acting users it
-- read then. SQLite's writer learns the same from `PRAGMA data_version`; the column is
-- here too so that both databases have the same tables.
ALTER TABLE log_head ADD COLUMN writes BIGINT NOT NULL DEFAULT 0;
