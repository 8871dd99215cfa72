-- Whether the target schema exists: publish moves the staging tables into it.
SELECT to_regnamespace(%(schema)s) IS NOT NULL;
