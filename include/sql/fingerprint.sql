-- A fingerprint of one table's rows ({rows}: the table, its rejects or a child
-- table): their number and the sum of the hashes of every column but the page
-- (which records where a row was read, not what it holds). publish records the
-- staging tables' as the live tables'; an incremental run finds the same unless
-- someone else changed them.
SELECT count(*) || ':' || coalesce(sum(('x' || left(md5(({content})::text), 16))::bit(64)::bigint), 0)
FROM {rows};
