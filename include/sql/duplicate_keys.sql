-- _id keys the staging tables hold more than once (rows and rejects together).
SELECT _id, count(*) FROM (
    SELECT _id FROM {staging}
    UNION ALL
    SELECT coalesce(_id, '') FROM {staging_rejects}
) AS target_keys
GROUP BY _id HAVING count(*) > 1 ORDER BY _id LIMIT 10;
