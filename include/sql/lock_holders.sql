-- The other sessions holding a lock on the live tables that can hold publish up (readers'
-- ACCESS SHARE never does), for a publish that gave up waiting.
SELECT activity.pid, activity.usename, activity.application_name, locks.mode, activity.state,
       left(activity.query, 120)
FROM pg_locks AS locks
JOIN pg_stat_activity AS activity ON activity.pid = locks.pid
WHERE locks.granted
  AND locks.relation IN (to_regclass(%(live)s), to_regclass(%(live_rejects)s))
  AND locks.mode <> 'AccessShareLock'
  AND activity.pid <> pg_backend_pid()
ORDER BY activity.pid;
