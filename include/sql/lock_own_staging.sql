-- The run's own staging tables ({relations}), which publish moves in or drops (ACCESS
-- EXCLUSIVE): taken first, so that a person reading them makes the attempt wait
-- before any work.
LOCK TABLE {relations} IN ACCESS EXCLUSIVE MODE;
