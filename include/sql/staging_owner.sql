-- The run that owns the staging tables, as reset_table wrote it in the target
-- table's staging table's comment; no row when there is no staging table.
SELECT obj_description(c.oid, 'pg_class')
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %(staging_schema)s AND c.relname = %(staged_name)s;
