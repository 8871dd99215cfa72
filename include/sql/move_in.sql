-- First publish of a table (no live table yet): the staging table moves in
-- whole, with its indexes and constraints; nothing else can depend on it yet.
ALTER TABLE {staging} SET SCHEMA {schema};

COMMENT ON TABLE {live} IS NULL;
