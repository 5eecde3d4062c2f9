-- Signed checkpoints (C2SP signed notes) as the server made them. Auditors trust the
-- copies written outside the database; these are for proofs and for comparison.
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    size BIGINT NOT NULL,
    root BLOB NOT NULL,
    ts BIGINT NOT NULL,
    note TEXT NOT NULL
);

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
