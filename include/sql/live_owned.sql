-- Whether this connection's role has the owner's privileges on the live tables (it
-- owns them or inherits from their owner): ANALYZE by anyone else does nothing but warn.
SELECT coalesce(bool_and(pg_has_role(relowner, 'USAGE')), false)
FROM pg_class
WHERE oid IN (SELECT to_regclass(name) FROM unnest(%(names)s::text[]) AS name);
