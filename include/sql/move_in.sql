-- First publish of a live table (the table, its rejects or a child table: none yet):
-- its staging table moves in whole, with its indexes and constraints, and takes
-- the live name; nothing else can depend on it yet.
ALTER TABLE {staging} SET SCHEMA {schema};

ALTER TABLE {moved} RENAME TO {live_name};

COMMENT ON TABLE {live} IS NULL;
