-- The rejects by column (NULL: the document as a whole) and reason, most frequent first.
SELECT column_name, reason, count(*) FROM {copy_rejects} AS rejects
GROUP BY column_name, reason ORDER BY count(*) DESC, column_name NULLS FIRST, reason LIMIT 20;
