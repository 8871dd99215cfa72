-- The indexes of a table moved in, named after its staging name ("<schema>.<table>_pkey"),
-- with the names they take now: "<table>_pkey".
SELECT indexrelid::regclass::text, substr(relname, length(%(prefix)s) + 1)
FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid
WHERE indrelid = %(live)s::regclass AND starts_with(relname, %(prefix)s);
