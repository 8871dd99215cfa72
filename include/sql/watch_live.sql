-- The watch on a live table (the table, its rejects or a child table): every statement
-- that writes its rows outside publish (inserts, deletes, TRUNCATE, and updates of the
-- mapping's columns: a person's own columns are theirs) is recorded in the published
-- state of the table named (NoteWrite in state_tables.sql), and the next run copies in
-- full. A statement trigger: one call per statement, whatever the rows. Made again, it is
-- enabled again, on the columns of the mapping as it is now; publish holds a lock that
-- lets readers read meanwhile (SHARE ROW EXCLUSIVE, or the ACCESS EXCLUSIVE of a table
-- whose columns change).
CREATE OR REPLACE TRIGGER mongo_migration_watch
AFTER INSERT OR UPDATE OF {watched_columns} OR DELETE OR TRUNCATE ON {live}
FOR EACH STATEMENT EXECUTE FUNCTION {note_write}({target});
