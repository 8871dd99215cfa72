-- Whether the shared state tables exist with every column this version writes, and
-- the functions of the live tables' watch and of the staged keys: a read of the
-- catalog, which locks nothing.
SELECT count(*) = 3 AND to_regprocedure(%(note_write)s) IS NOT NULL AND to_regclass(%(staged_keys)s) IS NOT NULL
       AND to_regprocedure(%(count_keys)s) IS NOT NULL
FROM pg_attribute
WHERE attrelid = to_regclass(%(published)s) AND attname IN ('position', 'fingerprint', 'written_by_others')
  AND NOT attisdropped AND to_regclass(%(positions)s) IS NOT NULL;
