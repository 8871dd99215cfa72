INSERT INTO {published} (target_schema, target_table, dag_id, run_id, published_at, result)
VALUES (%(schema)s, %(table)s, %(dag_id)s, %(run_id)s, now(), %(result)s)
ON CONFLICT (target_schema, target_table) DO UPDATE
SET dag_id = excluded.dag_id, run_id = excluded.run_id, published_at = excluded.published_at,
    result = excluded.result;
