-- The target table: one row per MongoDB document. Typed columns hold the user
-- fields; "document" holds the whole original document as MongoDB Extended
-- JSON, so fields without a column of their own are never lost.
-- "_id" uses the C collation so its order is the byte order of the key, the
-- same order MongoDB pages by (see plugins/mongo_migration/documents.py).
DROP TABLE IF EXISTS {table};

CREATE TABLE {table} (
    _id        text COLLATE "C" PRIMARY KEY,
    username   text,
    email      text,
    age        integer,
    created_at timestamptz,
    document   jsonb NOT NULL
);
