-- The point of the source the live table was last published as of, the fingerprint
-- of the tables that publish left, the versions of the mapping and of the
-- conversion that wrote them, why a later run could not resume from that point, and
-- the seconds of change stream the last full copy read (what the oplog had to hold).
SELECT position, fingerprint, result->'versions', result->>'point_lost', (result->>'full_copy_seconds')::float
FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
