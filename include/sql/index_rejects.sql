CREATE INDEX ON {staging} (_id);
