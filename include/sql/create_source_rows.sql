-- The source's documents verify reads again, for this transaction only: their
-- _id keys, and with the content check their rows as the pages write them
-- (a document set aside has its _id only), and each child table's rows.
CREATE TEMPORARY TABLE {source} ({definitions}) ON COMMIT DROP;
