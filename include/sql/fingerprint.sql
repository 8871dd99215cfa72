-- A fingerprint of a table's rows ({rows}) and rejects ({rejects}): their numbers
-- and the sums of the hashes of every column but the page (which records where a
-- row was read, not what it holds). publish records the staging tables' as the
-- live tables'; an incremental run finds the same unless someone else changed them.
SELECT (SELECT count(*) || ':' || coalesce(sum(('x' || left(md5(({content})::text), 16))::bit(64)::bigint), 0)
        FROM {rows})
       || '/' ||
       (SELECT count(*) || ':' || coalesce(sum(('x' || left(md5((_id, reason, document)::text), 16))::bit(64)::bigint), 0)
        FROM {rejects});
