-- _id keys the source's documents read again hold more than once (create_source_rows.sql):
-- on a collection sharded on a key that does not start with _id, _id is unique only
-- within each shard.
SELECT _id, count(*) FROM {table_read_again} GROUP BY _id HAVING count(*) > 1 ORDER BY _id LIMIT 10;
