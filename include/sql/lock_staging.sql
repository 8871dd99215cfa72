-- The load lock of a target table, held until the transaction ends:
-- pg_advisory_xact_lock for reset_table and publish, which take it alone, and
-- pg_advisory_xact_lock_shared for the pages of the owning run. A person can
-- take the same lock (pg_advisory_lock with the same key) to keep every run off
-- the table.
SELECT {lock_function}(hashtextextended(%(lock_key)s, 0));
