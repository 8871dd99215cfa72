-- Remove what an earlier attempt of this page wrote, in the same transaction
-- as the page's COPY, so a retried page never leaves a duplicate or a gap.
DELETE FROM {table} WHERE page = %(page)s;
