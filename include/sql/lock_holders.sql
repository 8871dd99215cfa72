-- The other sessions that can hold publish up on the live tables, for a publish that
-- gave up waiting: those holding or waiting for a lock stronger than a reader's, and
-- the readers too whenever someone is waiting (a stronger lock queued behind a long
-- read holds publish up behind it).
WITH table_locks AS (
    SELECT locks.pid, locks.mode, locks.granted
    FROM pg_locks AS locks
    WHERE locks.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND locks.relation IN (SELECT to_regclass(name) FROM unnest(%(names)s::text[]) AS name)
      AND locks.pid <> pg_backend_pid()
)
SELECT activity.pid, activity.usename, activity.application_name,
       table_locks.mode || CASE WHEN table_locks.granted THEN '' ELSE ' (waiting)' END,
       activity.state, left(activity.query, 120)
FROM table_locks
JOIN pg_stat_activity AS activity ON activity.pid = table_locks.pid
WHERE table_locks.mode <> 'AccessShareLock'
   OR NOT table_locks.granted
   OR EXISTS (SELECT FROM table_locks AS waiting WHERE NOT waiting.granted)
ORDER BY activity.pid;
