ALTER TABLE {staging_rejects} SET SCHEMA {schema};
