-- With the content check: the documents read again (the table's, not set aside)
-- whose rows in one child table differ from the source's (read again for the child
-- table), compared as text where equality would hide a difference.
WITH read_again AS (SELECT _id FROM {table_read_again} WHERE page IS NOT NULL),
staged AS (
    SELECT {staged_compared} FROM {copy} AS staged WHERE _id IN (SELECT _id FROM read_again)
),
source AS (SELECT {source_compared} FROM {read_again} AS source)
SELECT DISTINCT _id, 'changed' FROM (
    (SELECT * FROM source EXCEPT ALL SELECT * FROM staged)
    UNION ALL
    (SELECT * FROM staged EXCEPT ALL SELECT * FROM source)
) AS differing
ORDER BY _id LIMIT %(most)s;
