-- An incremental run's copy of one table (the table, its rejects or a child table):
-- the staging rows of the documents changed since the published point, as they
-- are now, and the live rows of every other document.
(
    SELECT {columns} FROM {staging}
    UNION ALL
    SELECT {columns} FROM {live} AS live
    WHERE NOT EXISTS (SELECT FROM {changed} AS changed WHERE changed._id = {live_id})
)
