-- Each notes revision keeps what it removed and added (JSON, `domain::note::Change`),
-- so that a record's history shows that without reading whole texts, which grow with
-- every stamped line. Revisions written before keep NULL; history computes theirs from
-- the texts as before.
--
-- SQLite adds a column after the others, and a column after a long text is reached
-- through the text's overflow pages: the table is rebuilt with the change before the
-- text. Dropping a table fires no triggers, so the append-only guards stay in force up
-- to the copy and are made again for the new table.
CREATE TABLE note_revisions_new (
    id INTEGER PRIMARY KEY,
    record_type TEXT NOT NULL,
    record_id BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id BIGINT,
    author_initials TEXT NOT NULL,
    author_name TEXT NOT NULL,
    change TEXT,
    body TEXT NOT NULL,
    UNIQUE (record_type, record_id, revision)
);
INSERT INTO note_revisions_new (id, record_type, record_id, revision, ts, author_kind,
    author_id, author_initials, author_name, change, body)
SELECT id, record_type, record_id, revision, ts, author_kind, author_id, author_initials,
    author_name, NULL, body FROM note_revisions ORDER BY id;
DROP TABLE note_revisions;
ALTER TABLE note_revisions_new RENAME TO note_revisions;

CREATE TRIGGER note_revisions_no_update BEFORE UPDATE ON note_revisions
BEGIN SELECT RAISE(ABORT, 'note revisions are kept as written'); END;
CREATE TRIGGER note_revisions_no_delete BEFORE DELETE ON note_revisions
BEGIN SELECT RAISE(ABORT, 'note revisions are kept as written'); END;
