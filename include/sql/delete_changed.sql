-- The rows (or rejects, or child rows) of the documents a batch of changes
-- touched: the catch-up writes back those that still exist, as they are now.
DELETE FROM {staging} WHERE _id = ANY(%(keys)s);
