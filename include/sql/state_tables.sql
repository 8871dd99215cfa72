-- The state the runs of every target share, made once: by a run that finds it
-- missing or of another version (target.ensure_state_tables; each statement leaves
-- what is there as it is, so running it again is safe), never altered on every run,
-- since altering a table waits for, and blocks, everyone reading it. The schema is made
-- before, where it is missing: IF NOT EXISTS still needs CREATE on the database, which a
-- role given the schema (deploy/roles/postgres.sql) does not have.

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

-- Where each target's staging tables stand in the source's change stream (see
-- plugins/mongo_migration/changes.py and positions.py), keyed by their staging name "<schema>.<table>":
-- open_change_stream writes where the run starts, the catch-up advances it in the
-- transaction that applies the changes up to it. A null position: none yet, or the
-- source has no change stream.
CREATE TABLE IF NOT EXISTS {positions} (
    target_table text PRIMARY KEY,
    position     jsonb
);

ALTER TABLE {published} ADD COLUMN IF NOT EXISTS position jsonb,
                        ADD COLUMN IF NOT EXISTS fingerprint text,
                        ADD COLUMN IF NOT EXISTS written_by_others text;

-- What the watch on every live table runs (watch_live.sql): once per statement
-- that writes to it, outside publish (which sets mongo_migration.publishing for its
-- transaction), it records the first such write in the published state, so that the
-- next run copies in full. As the state's owner, since the writer may not write the
-- state; a write after the first is a lookup of the one row.
CREATE OR REPLACE FUNCTION {note_write}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('mongo_migration.publishing', true) IS DISTINCT FROM 'on' THEN
        UPDATE {published}
        SET written_by_others = TG_OP || ' on ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' by role '
                                || session_user || ' at ' || statement_timestamp()
        WHERE target_schema = TG_TABLE_SCHEMA AND target_table = TG_ARGV[0] AND written_by_others IS NULL;
    END IF;
    RETURN NULL;
END
$$;

-- Which keys each run's staging table holds (the table's and its rejects'), kept as
-- they are written: a row per statement that inserts, updates or deletes rows (count_keys.sql),
-- with how many keys and the sum of their hashes, and none left by a TRUNCATE. Their
-- sums, and the number of the last write, bind verify's proof to the staging tables it
-- proved, without reading them again (staged_keys.sql): a page copied again after verify
-- writes the same keys, and another last write. reset_table forgets a target's rows.
CREATE TABLE IF NOT EXISTS {staged_keys} (
    write         bigint GENERATED ALWAYS AS IDENTITY,  -- in the order of the writes: the last names the state
    staging_table text NOT NULL,
    keys          bigint NOT NULL,
    key_hash      numeric NOT NULL
);
ALTER TABLE {staged_keys} ADD COLUMN IF NOT EXISTS write bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX IF NOT EXISTS "StagedKeys_by_table" ON {staged_keys} (staging_table);

CREATE OR REPLACE FUNCTION {count_keys}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {staged_keys} WHERE staging_table = TG_TABLE_NAME;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO {staged_keys} (staging_table, keys, key_hash)
        SELECT TG_TABLE_NAME, count(*), coalesce(sum(hashtextextended(coalesce(_id, ''), 0)), 0) FROM written;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO {staged_keys} (staging_table, keys, key_hash)
        SELECT TG_TABLE_NAME, -count(*), -coalesce(sum(hashtextextended(coalesce(_id, ''), 0)), 0) FROM removed;
    END IF;
    RETURN NULL;
END
$$;

-- Last: the version this state is (tables.STATE_VERSION), which a run checks first.
COMMENT ON TABLE {published} IS {version};
