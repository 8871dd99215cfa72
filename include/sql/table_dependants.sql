-- What depends on a live table (views, foreign keys, ...): a changed mapping that
-- drops its child table cannot go on.
SELECT DISTINCT pg_describe_object(classid, objid, objsubid)
FROM pg_depend
WHERE refclassid = 'pg_class'::regclass AND refobjid = %(relation)s::regclass AND deptype = 'n'
  AND NOT (classid = 'pg_trigger'::regclass  -- the table's own watch, which publish makes again
           AND objid IN (SELECT oid FROM pg_trigger WHERE tgname = 'mongo_migration_watch'))
ORDER BY 1;
