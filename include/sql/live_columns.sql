-- A table's columns: name, type as PostgreSQL spells it, and whether NOT NULL.
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
WHERE attrelid = %(relation)s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
