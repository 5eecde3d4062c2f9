-- Each notes revision keeps what it removed and added (JSON, `domain::note::Change`),
-- so that a record's history shows that without reading whole texts, which grow with
-- every stamped line. Revisions written before keep NULL; history computes theirs from
-- the texts as before. (A long text is stored out of line, so the new column's place
-- after it costs nothing here.)
ALTER TABLE note_revisions ADD COLUMN change TEXT;
