-- The _id keys verify reads from the source, for this transaction only.
CREATE TEMPORARY TABLE source_keys (_id text COLLATE "C" NOT NULL) ON COMMIT DROP;
