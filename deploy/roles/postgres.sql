-- The target's role for the DAGs (docs/connecting.md): it logs in, owns the staging schema and the
-- tables it publishes, and may use and create tables in the target schema; nothing else. Run it as a
-- superuser or the database's owner, in the target database:
--
--   psql "postgresql://<admin>@<host>/<database>" -v password="$TARGET_DB_PASSWORD" \
--        -v role=mongo_migration -v schema=public -f deploy/roles/postgres.sql
--
-- Run again, it changes the password and grants what is missing. The compose file's demo target runs
-- it on its first start; tests/test_least_privilege.py runs a whole DAG run as this role.
\set ON_ERROR_STOP on
SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" LOGIN PASSWORD :'password';
-- The staging tables, the published state and the change streams' positions: the role's own schema.
CREATE SCHEMA IF NOT EXISTS mongo_migration_staging AUTHORIZATION :"role";
GRANT USAGE, CREATE ON SCHEMA mongo_migration_staging TO :"role";
-- publish moves the tables it makes into the target schema, and owns them there.
GRANT USAGE, CREATE ON SCHEMA :"schema" TO :"role";
