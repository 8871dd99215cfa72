-- _id keys the run's copy holds more than once (rows and rejects together); with
-- %(keys)s, only among those _id keys.
SELECT _id, count(*) FROM (
    SELECT _id FROM {copy} AS copied WHERE %(keys)s::text[] IS NULL OR _id = ANY(%(keys)s)
    UNION ALL
    SELECT coalesce(_id, '') FROM {copy_rejects} AS rejects WHERE %(keys)s::text[] IS NULL OR coalesce(_id, '') = ANY(%(keys)s)
) AS target_keys
GROUP BY _id HAVING count(*) > 1 ORDER BY _id LIMIT 10;
