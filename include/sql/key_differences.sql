-- The source's _id keys that the staging tables do not hold ("missing"), and
-- the staging tables' keys that the source does not hold ("unknown"), with the
-- number of each; a document with no readable _id counts as ''.
WITH target_keys AS (
    SELECT _id FROM {staging}
    UNION ALL
    SELECT coalesce(_id, '') FROM {staging_rejects}
),
differences AS (
    SELECT _id, 'missing' AS difference FROM source_keys AS source
    WHERE NOT EXISTS (SELECT FROM target_keys WHERE target_keys._id = source._id)
    UNION ALL
    SELECT _id, 'unknown' FROM target_keys
    WHERE NOT EXISTS (SELECT FROM source_keys AS source WHERE source._id = target_keys._id)
)
SELECT _id, difference FROM differences ORDER BY _id LIMIT %(most)s;
