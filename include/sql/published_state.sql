-- The point of the source the live table was last published as of, the fingerprint
-- of the tables that publish left, the versions of the mapping and of the
-- conversion that wrote them, and why a later run could not resume from that point.
SELECT position, fingerprint, result->'versions', result->>'point_lost' FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
