-- Whether the shared state tables exist with every column this version writes, and
-- the function of the live tables' watch: a read of the catalog, which locks nothing.
SELECT count(*) = 3 AND to_regprocedure(%(note_write)s) IS NOT NULL FROM pg_attribute
WHERE attrelid = to_regclass(%(published)s) AND attname IN ('position', 'fingerprint', 'written_by_others')
  AND NOT attisdropped AND to_regclass(%(positions)s) IS NOT NULL;
