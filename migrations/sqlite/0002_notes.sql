-- Notes and status notes, SQLite. Same tables as migrations/postgres.

-- The Notes tab: every save is a revision, kept for ever.
CREATE TABLE note_revisions (
    id INTEGER PRIMARY KEY,
    record_type TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id BIGINT,
    author_initials TEXT NOT NULL,
    author_name TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (record_type, record_id, revision)
);

-- Read-only lines the system writes with the change that caused them.
CREATE TABLE status_notes (
    id INTEGER PRIMARY KEY,
    record_type TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id BIGINT,
    actor_initials TEXT NOT NULL,
    body TEXT NOT NULL,
    audit_idx BIGINT
);
CREATE INDEX status_notes_record ON status_notes (record_type, record_id, ts, id);

CREATE TRIGGER note_revisions_no_update BEFORE UPDATE ON note_revisions
BEGIN SELECT RAISE(ABORT, 'note revisions are kept as written'); END;
CREATE TRIGGER note_revisions_no_delete BEFORE DELETE ON note_revisions
BEGIN SELECT RAISE(ABORT, 'note revisions are kept as written'); END;
CREATE TRIGGER status_notes_no_update BEFORE UPDATE ON status_notes
BEGIN SELECT RAISE(ABORT, 'status notes are read-only'); END;
CREATE TRIGGER status_notes_no_delete BEFORE DELETE ON status_notes
BEGIN SELECT RAISE(ABORT, 'status notes are read-only'); END;
