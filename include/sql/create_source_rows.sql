-- The source's documents verify reads again, for one comparison: their _id keys, and
-- with the content check their rows as the pages write them (a document set aside
-- has its _id only), and each child table's rows. Unlogged, in the staging schema, and
-- written in a transaction per batch: no transaction stays open while the source is
-- read (it would hold back vacuum for every user of the database); verify drops it
-- after the comparison (drop_source_rows.sql), and a crash of the target empties it.
DROP TABLE IF EXISTS {read_again};

CREATE UNLOGGED TABLE {read_again} ({definitions});
