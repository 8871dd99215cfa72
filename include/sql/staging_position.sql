-- Where the staging tables stand in the source's change stream (null: nowhere).
SELECT position FROM {positions} WHERE target_table = %(staged_name)s;
