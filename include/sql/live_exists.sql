-- Whether the live table and its rejects table exist.
SELECT to_regclass(%(live)s) IS NOT NULL, to_regclass(%(live_rejects)s) IS NOT NULL;
