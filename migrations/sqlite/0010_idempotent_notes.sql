-- A line added to a record's notes under an Idempotency-Key: the revision it made, so a
-- retry answers with that revision instead of adding the line again. NULL for a created
-- record.
ALTER TABLE idempotency_keys ADD COLUMN revision BIGINT;
