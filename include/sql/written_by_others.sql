-- The first write by someone else to the live tables since their last publish (null:
-- none). Publish reads it FOR UPDATE (the lock value): its row then stays locked until publish
-- commits, so that a write meanwhile waits to be recorded after publish's record, never
-- lost under it.
SELECT written_by_others FROM {published}
WHERE target_schema = %(schema)s AND target_table = %(table)s
{lock};
