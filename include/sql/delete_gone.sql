-- Applying the verified copy to a live table in place (the table, then each child
-- table), so that everything that is not its rows stays: views, foreign keys,
-- policies, triggers, publications, owner, grants, comments. First the rows whose
-- key (the _id, and a child row's index) is gone; an incremental run looks only
-- at the documents that changed, the others' rows stay as they are.
DELETE FROM {live} AS live
WHERE NOT EXISTS (SELECT FROM {staging} AS staged WHERE ({staged_key}) = ({live_key}))
{only_changed};
