-- A run could not resume the source's change stream from the point the live table
-- was published as of (%(why)s): the next run copies in full, saying why, instead
-- of meeting the same end every night.
UPDATE {published}
SET position = NULL, result = result || jsonb_build_object('point_lost', %(why)s::text)
WHERE target_schema = %(schema)s AND target_table = %(table)s;
