-- _id keys the run's copy holds more than once (rows and rejects together).
SELECT _id, count(*) FROM (
    SELECT _id FROM {copy} AS copied
    UNION ALL
    SELECT coalesce(_id, '') FROM {copy_rejects} AS rejects
) AS target_keys
GROUP BY _id HAVING count(*) > 1 ORDER BY _id LIMIT 10;
