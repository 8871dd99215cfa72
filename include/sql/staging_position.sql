-- Where the staging tables stand in the source's change stream; no row before
-- open_change_stream ran.
SELECT position FROM {positions} WHERE target_table = %(table)s;
