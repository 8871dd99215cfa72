-- The run that owns the staging tables: only its tasks may write them.
COMMENT ON TABLE {staging} IS {owner};
