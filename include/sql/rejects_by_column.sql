-- How many documents each column set aside (NULL: the document as a whole).
SELECT column_name, count(*) FROM {copy_rejects} AS rejects GROUP BY column_name ORDER BY column_name NULLS FIRST;
