-- A fingerprint of one table's rows (of the table, its rejects, a child table,
-- or some of their rows): their number and the sum of the sha256 hashes (their first
-- 64 bits) of every column but the page (which records where a row was read, not
-- what it holds), under the fixed text settings of canonical_text.sql. publish
-- records the staging tables' as the live tables'; an incremental run finds the
-- same unless someone else changed them. A sum, so that an incremental publish
-- takes out the hashes of the rows it replaces and adds those of their new rows.
SELECT count(*),
       coalesce(sum(('x' || left(encode(sha256(convert_to(({content})::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint), 0)
FROM {rows};
