-- What preflight needs of the target, in one read of the catalog: whether the target
-- and staging schemas exist, whether this role may create a schema in the database,
-- and use and create tables in each schema (null where it does not exist), and the role.
SELECT to_regnamespace(%(schema)s) IS NOT NULL,
       to_regnamespace(%(staging)s) IS NOT NULL,
       has_database_privilege(current_database(), 'CREATE'),
       CASE WHEN to_regnamespace(%(schema)s) IS NOT NULL THEN has_schema_privilege(%(schema)s, 'USAGE') END,
       CASE WHEN to_regnamespace(%(schema)s) IS NOT NULL THEN has_schema_privilege(%(schema)s, 'CREATE') END,
       CASE WHEN to_regnamespace(%(staging)s) IS NOT NULL THEN has_schema_privilege(%(staging)s, 'USAGE') END,
       CASE WHEN to_regnamespace(%(staging)s) IS NOT NULL THEN has_schema_privilege(%(staging)s, 'CREATE') END,
       current_user;
