-- Whether the shared state is this version's (its version is the comment of
-- "Published", written last by state_tables.sql): a read of the catalog, which locks
-- nothing.
SELECT coalesce(obj_description(to_regclass(%(published)s), 'pg_class') = %(version)s, false);
