-- The run's own staging tables, which publish moves in or drops (ACCESS EXCLUSIVE):
-- taken first, so that a person reading them makes the attempt wait before any work.
LOCK TABLE {staging}, {staging_rejects} IN ACCESS EXCLUSIVE MODE;
