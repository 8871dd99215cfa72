-- The point of the source the live table was last published as of, and the
-- fingerprint of the rows that publish left.
SELECT position, fingerprint FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
