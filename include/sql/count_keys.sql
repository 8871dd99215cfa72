-- The staged keys of a staging table (the table's or its rejects'), kept as they are
-- written (count_keys in state_tables.sql): a statement trigger per kind of write, the
-- rows it wrote or deleted in a transition table. Dropped before the table moves in as
-- a live table (uncount_keys.sql).
CREATE TRIGGER staged_keys_inserted AFTER INSERT ON {staging}
REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {count_keys}();

CREATE TRIGGER staged_keys_updated AFTER UPDATE ON {staging}
REFERENCING OLD TABLE AS removed NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION {count_keys}();

CREATE TRIGGER staged_keys_deleted AFTER DELETE ON {staging}
REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION {count_keys}();

CREATE TRIGGER staged_keys_truncated AFTER TRUNCATE ON {staging}
FOR EACH STATEMENT EXECUTE FUNCTION {count_keys}();
