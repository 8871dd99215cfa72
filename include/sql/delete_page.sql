-- Remove what an earlier attempt of this page wrote, rows and rejects, in the
-- same transaction as the page's COPY, so a retried page never leaves a
-- duplicate or a gap.
WITH earlier_rows AS (DELETE FROM {staging} WHERE page = %(page)s)
DELETE FROM {staging_rejects} WHERE page = %(page)s;
