-- The run that last published the live table, what it published, and the
-- fingerprint of the rows it left.
SELECT dag_id, run_id, result, fingerprint FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
