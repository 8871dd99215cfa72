-- The watch on a live table, before publish sets it up again: one someone disabled.
DROP TRIGGER IF EXISTS mongo_migration_watch ON {live};
