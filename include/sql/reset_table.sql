-- The staging tables a run loads into: the target table and its rejects table,
-- with the names, columns and indexes the live ones get when publish moves them
-- into the target schema. The live tables are not touched here.
--
-- The target table: one row per MongoDB document. Typed columns hold the user
-- fields; "document" holds the whole original document as MongoDB Extended
-- JSON, so fields without a column of their own are never lost. "page" is the
-- migration page that wrote the row (-1: the catch-up): a retried page replaces
-- exactly its rows.
CREATE SCHEMA IF NOT EXISTS {staging_schema};

-- Which run published each live table, and what: publish writes it in the
-- transaction that publishes, so a retry of a publish that committed knows.
CREATE TABLE IF NOT EXISTS {published} (
    target_schema text NOT NULL,
    target_table  text NOT NULL,
    dag_id        text NOT NULL,
    run_id        text NOT NULL,
    published_at  timestamptz NOT NULL,
    result        jsonb NOT NULL,
    PRIMARY KEY (target_schema, target_table)
);

-- Where each staging table stands in the source's change stream (see
-- plugins/mongo_migration/changes.py): open_change_stream writes where the
-- run starts, the catch-up advances it in the transaction that applies the
-- changes up to it. A null position: none yet, or the source has no change stream.
CREATE TABLE IF NOT EXISTS {positions} (
    target_table text PRIMARY KEY,
    position     jsonb
);

ALTER TABLE {published} ADD COLUMN IF NOT EXISTS position jsonb,
                        ADD COLUMN IF NOT EXISTS fingerprint text;

INSERT INTO {positions} (target_table, position) VALUES ({table_name}, NULL)
ON CONFLICT (target_table) DO UPDATE SET position = NULL;

DROP TABLE IF EXISTS {staging}, {staging_rejects};

CREATE TABLE {staging} (
    _id        text COLLATE "C" PRIMARY KEY,
    username   text,
    email      text,
    age        integer,
    created_at timestamptz,
    document   jsonb NOT NULL,
    page       integer NOT NULL
);

CREATE INDEX ON {staging} (page);

-- Documents that cannot be written faithfully, kept whole (their BSON as the
-- server sent it) with the reason, instead of being lost.
CREATE TABLE {staging_rejects} (
    _id      text,
    reason   text NOT NULL,
    document bytea NOT NULL,
    page     integer NOT NULL
);

CREATE INDEX ON {staging_rejects} (page);

CREATE INDEX ON {staging_rejects} (_id);

-- The run that owns the staging tables: only its tasks may write them.
COMMENT ON TABLE {staging} IS {owner};
