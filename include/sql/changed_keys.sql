-- The _id keys an incremental run's catch-up changed since the published point, in
-- order, up to %(most)s after %(after)s (null: from the first): the documents its
-- proof of the changes reads again, a chunk at a time.
SELECT _id FROM {changed} WHERE %(after)s::text IS NULL OR _id > %(after)s ORDER BY _id LIMIT %(most)s;
