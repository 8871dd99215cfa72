-- Whether the shared state tables exist with every column this version writes:
-- a read of the catalog, which locks nothing.
SELECT count(*) = 2 FROM pg_attribute
WHERE attrelid = to_regclass(%(published)s) AND attname IN ('position', 'fingerprint') AND NOT attisdropped
  AND to_regclass(%(positions)s) IS NOT NULL;
