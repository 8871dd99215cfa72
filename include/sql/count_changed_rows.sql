-- An incremental run's rows and rejects without counting the live tables: the counts
-- the last publish recorded (and checked against the live table as it committed), less
-- the live rows and rejects of the documents changed since, plus their staging rows
-- and rejects. Index lookups and the staging tables: the cost of the changes. A reject
-- whose _id could not be read has none, and the catch-up's key ''.
SELECT (result->>'rows')::bigint
         - (SELECT count(*) FROM {live} AS live WHERE live._id IN (SELECT _id FROM {changed}))
         + (SELECT count(*) FROM {staging}),
       (result->>'rejects')::bigint
         - (SELECT count(*) FROM {live_rejects} AS live WHERE live._id IN (SELECT _id FROM {changed}))
         - (SELECT count(*) FROM {live_rejects} AS live
            WHERE live._id IS NULL AND EXISTS (SELECT FROM {changed} AS changed WHERE changed._id = ''))
         + (SELECT count(*) FROM {staging_rejects})
FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s;
