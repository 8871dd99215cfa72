-- The rejects of this run replace the previous run's.
WITH previous AS (DELETE FROM {live_rejects})
INSERT INTO {live_rejects} (_id, reason, document, page)
SELECT _id, reason, document, page FROM {staging_rejects};
