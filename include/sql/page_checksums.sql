-- Per page: the documents written (rows and rejects) and the checksum of their
-- _id keys, computed as plugins/mongo_migration/documents.py id_checksum() does.
SELECT page,
       count(*),
       ((sum(('x' || left(md5(_id), 16))::bit(64)::bigint) % 18446744073709551616)
        + 18446744073709551616) % 18446744073709551616
FROM (SELECT page, _id FROM {staging}
      UNION ALL
      SELECT page, coalesce(_id, '') FROM {staging_rejects}) AS written
GROUP BY page;
