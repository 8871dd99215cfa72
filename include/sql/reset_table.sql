-- A run's staging tables: the target table, its rejects table and its child tables,
-- each created by create_staging.sql; the live tables are not touched here. The
-- position of the staging tables in the source's change stream starts empty.
INSERT INTO {positions} (target_table, position) VALUES (%(staged_name)s, NULL)
ON CONFLICT (target_table) DO UPDATE SET position = NULL;
