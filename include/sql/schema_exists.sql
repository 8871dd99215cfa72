-- Whether a schema exists: the target's (publish moves the staging tables into it), or the staging one.
SELECT to_regnamespace(%(schema)s) IS NOT NULL;
