-- Replace the live tables with the verified staging tables, in one transaction:
-- readers see the previous tables until the commit and the new ones after it,
-- never a half-filled one. A reader's lock is waited for a few seconds only, as
-- every reader arriving meanwhile would queue behind us; the task's retry then
-- tries again.
SET LOCAL lock_timeout = '5s';

DROP TABLE IF EXISTS {live}, {live_rejects};

ALTER TABLE {staging} SET SCHEMA {schema};

ALTER TABLE {staging_rejects} SET SCHEMA {schema};

COMMENT ON TABLE {live} IS {note};
