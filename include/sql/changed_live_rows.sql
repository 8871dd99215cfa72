-- The live rows of the documents an incremental run changed (of the table, its
-- rejects or a child table), whose hashes publish takes out of the fingerprint.
(SELECT * FROM {live} AS live WHERE {live_id} IN (SELECT _id FROM {changed})) AS changed_rows
