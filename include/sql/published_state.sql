-- The point of the source the live table was last published as of, the fingerprint
-- of the tables that publish left, and the versions of the mapping and of the
-- conversion that wrote them.
SELECT position, fingerprint, result->'versions' FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
