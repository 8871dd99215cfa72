-- Whether this connection's role owns the live tables (or is a member of their owner):
-- ANALYZE by anyone else does nothing but warn.
SELECT bool_and(pg_has_role(relowner, 'MEMBER'))
FROM pg_class
WHERE oid IN (to_regclass(%(live)s), to_regclass(%(live_rejects)s));
