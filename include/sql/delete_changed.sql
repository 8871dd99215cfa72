-- The rows and rejects of the documents a batch of changes touched: the
-- catch-up writes back those that still exist, as they are now.
WITH earlier_rows AS (DELETE FROM {staging} WHERE _id = ANY(%(keys)s))
DELETE FROM {staging_rejects} WHERE _id = ANY(%(keys)s);
