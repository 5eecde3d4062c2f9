-- Keeptrack on PostgreSQL as a role that cannot rewrite the log.
--
-- The database's owner runs the migrations (`keeptrack init`, or any keeptrack command,
-- as the owner); `keeptrack serve` then runs as keeptrack_app, which may append to the
-- log but has no right to UPDATE, DELETE or TRUNCATE it, nor to drop or disable the guard
-- triggers (only an owner may). Run this as the owner after each upgrade's migrations:
--
--   psql -v ON_ERROR_STOP=1 -d keeptrack -f docs/postgres-role.sql
--
-- and create the role once beforehand: CREATE ROLE keeptrack_app LOGIN PASSWORD '...';
-- tests/app/pg_role.rs runs this file and then the whole product as that role.

GRANT USAGE ON SCHEMA public TO keeptrack_app;
-- The server checks that the migrations it needs are there; it does not run them.
GRANT SELECT ON _sqlx_migrations TO keeptrack_app;

-- The studio's records and settings: changed in place, never deleted (deletes are soft).
GRANT SELECT, INSERT, UPDATE ON clients, sessions, appointments, invoices, payments, users,
    security_groups, list_items, preferences, counters TO keeptrack_app;

-- Sign-in state: sessions end, tokens are revoked, failures are forgotten on success.
GRANT SELECT, INSERT, UPDATE ON auth_sessions, api_tokens, idempotency_keys TO keeptrack_app;
GRANT SELECT, INSERT, DELETE ON sign_in_failures TO keeptrack_app;

-- The log: append only. The head's size and root only grow (`audit verify` checks them).
GRANT SELECT, INSERT ON audit_log, audit_keys, audit_tree, checkpoints, status_notes,
    note_revisions, audit_archive TO keeptrack_app;
GRANT SELECT, UPDATE ON log_head TO keeptrack_app;
-- Each record's newest entry, where history starts: moved with every append (`audit
-- verify` recomputes every head and link from the entries).
GRANT SELECT, INSERT, UPDATE ON audit_heads TO keeptrack_app;
-- Archiving (`audit archive`, `audit.retention_days`) empties an entry's body, which the
-- guard trigger allows only inside a recorded run. Leave this out to forbid archiving.
GRANT UPDATE (entry) ON audit_log TO keeptrack_app;
