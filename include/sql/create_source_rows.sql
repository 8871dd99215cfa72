-- The source's documents verify reads again, for this transaction only: their
-- _id keys, and with the content check their rows as the pages write them
-- (a document set aside has its _id only).
CREATE TEMPORARY TABLE source_rows (
    _id        text COLLATE "C" NOT NULL,
    username   text,
    email      text,
    age        integer,
    created_at timestamptz,
    document   jsonb,
    page       integer
) ON COMMIT DROP;
