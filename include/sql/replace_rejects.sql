-- The rejects of this run replace the previous run's.
WITH previous AS (DELETE FROM {live})
INSERT INTO {live} ({columns}) SELECT {columns} FROM {staging};
