-- The rows (or rejects, or child rows) of the documents a batch of changes
-- touched: the catch-up writes back those that still exist, as they are now. A
-- reject whose _id could not be read has none; the catch-up calls it ''.
DELETE FROM {staging} WHERE _id = ANY(%(keys)s) OR (_id IS NULL AND '' = ANY(%(keys)s));
