-- The watch on a live table whose columns publish changes (under its ACCESS EXCLUSIVE
-- lock): a column the watch names cannot be retyped or dropped; publish makes the watch
-- again on the new columns once the rows are in (watch_live.sql).
DROP TRIGGER IF EXISTS mongo_migration_watch ON {live};
