-- Which run published the live table, what it published, the point of the
-- source's change stream the table is consistent with (null: none is known)
-- and how its tables are watched for others' writes (state.WATCHED), none recorded
-- from now on. An incremental run keeps how long the last full copy needed the oplog
-- to keep its start, and a run without a full proof when the last full proof was.
INSERT INTO {published} (target_schema, target_table, dag_id, run_id, published_at, result, position, fingerprint)
VALUES (%(schema)s, %(table)s, %(dag_id)s, %(run_id)s, now(), %(result)s, %(position)s, %(fingerprint)s)
ON CONFLICT (target_schema, target_table) DO UPDATE
SET dag_id = excluded.dag_id, run_id = excluded.run_id, published_at = excluded.published_at,
    result = excluded.result || CASE WHEN excluded.result->'full_copy_seconds' = 'null'
                                     THEN jsonb_build_object('full_copy_seconds', {published}.result->'full_copy_seconds')
                                     ELSE '{{}}' END
                             || CASE WHEN excluded.result->'full_proof_at' = 'null'
                                     THEN jsonb_build_object('full_proof_at', {published}.result->'full_proof_at')
                                     ELSE '{{}}' END,
    position = excluded.position, fingerprint = excluded.fingerprint, written_by_others = NULL;
