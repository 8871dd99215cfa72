-- How the run's copy (its staging tables; an incremental run's with the live rows
-- of the documents that did not change, incremental_copy.sql) differs from the
-- source's documents read again (create_source_rows.sql): "missing" (the source holds it, the
-- copy does not),
-- "unknown" (the other way round) and, with %(content)s, "changed" (a row whose
-- columns or document differ, compared as text where equality would hide a
-- difference; rejects are compared by _id only). With %(keys)s, only at those
-- _id keys. A document with no readable _id counts as ''.
WITH target_keys AS (
    SELECT _id FROM {copy} AS copied WHERE %(keys)s::text[] IS NULL OR _id = ANY(%(keys)s)
    UNION ALL
    SELECT coalesce(_id, '') FROM {copy_rejects} AS rejects WHERE %(keys)s::text[] IS NULL OR _id = ANY(%(keys)s)
),
differences AS (
    SELECT _id, 'missing' AS difference FROM {read_again} AS source
    WHERE NOT EXISTS (SELECT FROM target_keys WHERE target_keys._id = source._id)
    UNION ALL
    SELECT _id, 'unknown' FROM target_keys
    WHERE NOT EXISTS (SELECT FROM {read_again} AS source WHERE source._id = target_keys._id)
    UNION ALL
    SELECT source._id, 'changed' FROM {read_again} AS source JOIN {copy} AS staged USING (_id)
    WHERE %(content)s AND source.page IS NOT NULL
      AND ({source_compared}) IS DISTINCT FROM ({staged_compared})
)
SELECT _id, difference FROM differences ORDER BY _id LIMIT %(most)s;
