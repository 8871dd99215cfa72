-- What depends on some columns of a live table (views, rules, constraints,
-- policies...): a changed mapping that drops or retypes them cannot go on.
SELECT DISTINCT pg_describe_object(classid, objid, objsubid)
FROM pg_depend
WHERE refclassid = 'pg_class'::regclass AND refobjid = %(relation)s::regclass AND deptype = 'n'
  AND NOT (classid = 'pg_trigger'::regclass  -- the table's own watch, which publish makes again
           AND objid IN (SELECT oid FROM pg_trigger WHERE tgname = 'mongo_migration_watch'))
  AND refobjsubid IN (
      SELECT attnum FROM pg_attribute WHERE attrelid = %(relation)s::regclass AND attname = ANY(%(columns)s)
  )
ORDER BY 1;
