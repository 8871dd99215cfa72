-- The privileges granted on the live tables (other than their owner's own), to
-- grant them again on the staging tables that replace them. A NULL grantee is PUBLIC.
SELECT c.relname,
       CASE acl.grantee WHEN 0 THEN NULL ELSE pg_get_userbyid(acl.grantee) END,
       acl.privilege_type,
       acl.is_grantable
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
WHERE n.nspname = %(schema)s
  AND c.relname IN (%(table)s::text, %(table)s::text || '_rejects')
  AND acl.grantee <> c.relowner;
