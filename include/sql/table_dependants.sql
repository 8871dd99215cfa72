-- What depends on a live table (views, foreign keys, ...): a changed mapping that
-- drops its child table cannot go on.
SELECT DISTINCT pg_describe_object(classid, objid, objsubid)
FROM pg_depend
WHERE refclassid = 'pg_class'::regclass AND refobjid = %(relation)s::regclass AND deptype = 'n'
ORDER BY 1;
