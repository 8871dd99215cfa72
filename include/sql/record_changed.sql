-- The _id keys a batch of changes touched, in an incremental run.
INSERT INTO {changed} (_id) SELECT unnest(%(keys)s::text[]) ON CONFLICT DO NOTHING;
