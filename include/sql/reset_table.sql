-- The target table: one row per MongoDB document. Typed columns hold the user
-- fields; "document" holds the whole original document as MongoDB Extended
-- JSON, so fields without a column of their own are never lost. "page" is the
-- migration page that wrote the row: a retried page replaces exactly its rows.
DROP TABLE IF EXISTS {table};

CREATE TABLE {table} (
    _id        text COLLATE "C" PRIMARY KEY,
    username   text,
    email      text,
    age        integer,
    created_at timestamptz,
    document   jsonb NOT NULL,
    page       integer NOT NULL
);

CREATE INDEX ON {table} (page);

-- Documents that cannot be written faithfully, kept whole (their BSON as the
-- server sent it) with the reason, instead of being lost.
DROP TABLE IF EXISTS {rejects};

CREATE TABLE {rejects} (
    _id      text,
    reason   text NOT NULL,
    document bytea NOT NULL,
    page     integer NOT NULL
);

CREATE INDEX ON {rejects} (page);
