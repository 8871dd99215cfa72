-- Applying the verified copy to the live table in place, so that everything
-- that is not its rows stays: views, foreign keys, policies, triggers,
-- publications, owner, grants, comments. First the rows whose _id is gone.
DELETE FROM {live} AS live
WHERE NOT EXISTS (SELECT FROM {staging} AS staged WHERE staged._id = live._id);
