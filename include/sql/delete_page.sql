-- Remove what an earlier attempt of this page wrote into one staging table (run for
-- the table, its rejects and each child table), in the same transaction as the
-- page's COPY, so a retried page never leaves a duplicate or a gap.
DELETE FROM {staging} WHERE page = %(page)s;
