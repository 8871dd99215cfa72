-- The run that last published the live table, and what it published.
SELECT dag_id, run_id, result FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
