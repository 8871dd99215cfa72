-- The point of the source the live table was last published as of, whether that
-- publish set up the live tables' watch (state.WATCHED; an earlier version's
-- fingerprint), the versions of the mapping and of the conversion that wrote them,
-- why a later run could not start from that point, how long the last full copy
-- needed the oplog to keep its start, in seconds, and when the last full proof was
-- published (seconds since the epoch).
SELECT position, fingerprint, result->'versions', result->>'point_lost', (result->>'full_copy_seconds')::float,
       (result->>'full_proof_at')::float
FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
