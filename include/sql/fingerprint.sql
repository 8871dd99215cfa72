-- A fingerprint of the live table's rows: their number and the sum of the hashes
-- of every column but the page (which records where a row was read, not what it
-- holds). publish records it; an incremental run finds the same one unless
-- someone else changed the rows since.
SELECT count(*) || ':' || coalesce(sum(('x' || left(md5(
           (_id, username, email, age, created_at, document)::text
       ), 16))::bit(64)::bigint), 0)
FROM {live};
