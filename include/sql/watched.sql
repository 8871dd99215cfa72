-- Which of the live tables named have their watch (watch_live.sql) and have it
-- enabled: a trigger disabled, or set to fire only on a replica, misses writes.
SELECT nspname || '.' || relname FROM pg_trigger
JOIN pg_class ON pg_class.oid = tgrelid JOIN pg_namespace ON pg_namespace.oid = relnamespace
WHERE tgname = 'mongo_migration_watch' AND tgenabled IN ('O', 'A')
  AND tgrelid = ANY(%(names)s::regclass[]);
