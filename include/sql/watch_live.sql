-- The watch on a live table (the table, its rejects or a child table): every statement
-- that writes to it outside publish is recorded in the published state of the table
-- named (note_write in state_tables.sql), and the next run copies in full. A statement
-- trigger: one call per statement, whatever the rows, and TRUNCATE too.
CREATE TRIGGER mongo_migration_watch
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {live}
FOR EACH STATEMENT EXECUTE FUNCTION {note_write}({target});
