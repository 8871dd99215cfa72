-- How many of the copy's rejects the live rejects table does not hold: documents set aside
-- by this run that the last publish had not set aside (new ones, or ones a change broke).
SELECT count(*) FROM {copy} AS rejects
WHERE NOT EXISTS (SELECT FROM {live} AS live WHERE live._id = rejects._id);
