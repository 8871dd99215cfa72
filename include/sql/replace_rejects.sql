-- The rejects of this run replace the previous run's (an incremental run's: those of
-- the documents that changed).
WITH previous AS (DELETE FROM {live} AS live WHERE true {only_changed})
INSERT INTO {live} ({columns}) SELECT {columns} FROM {staging};
