-- The watch of a live table (%(name)s, qualified; watch_live.sql): whether it is enabled
-- (a trigger disabled, or set to fire only on a replica, misses writes) and the columns
-- whose UPDATE it sees; no row: it has none.
SELECT tgenabled IN ('O', 'A'),
       array(SELECT attname::text FROM pg_attribute WHERE attrelid = tgrelid AND attnum = ANY(tgattr))
FROM pg_trigger
WHERE tgname = 'mongo_migration_watch' AND tgrelid = to_regclass(%(name)s);
