-- The _id keys an incremental run's catch-up changed since the published point: the
-- documents its proof of the changes reads again.
SELECT _id FROM {changed} ORDER BY _id;
