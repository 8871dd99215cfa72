-- How many of this run's rejects the live rejects table does not hold: documents set aside
-- by this run that the last publish had not set aside (new ones, or ones a change broke).
-- Only the staging rejects can be new: an incremental run's copy keeps the others' live rejects.
-- A reject whose _id could not be read (NULL) matches one the last publish kept; the join on
-- coalesce() stays a hash join (IS NOT DISTINCT FROM would compare every pair).
SELECT count(*) FROM {staging} AS rejects
WHERE NOT EXISTS (SELECT FROM {live} AS live WHERE coalesce(live._id, '') = coalesce(rejects._id, ''));
