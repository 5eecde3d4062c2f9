-- The query keys move to a file of their own beside the database (`<file>-keys`), where
-- a thread of their own copies them after the writer's commits (src/store/key_file.rs).
-- They are copies of the log's columns: the copier makes them again there from the log.
DROP TABLE audit_keys;
