SELECT _id FROM {table} WHERE page = %(page)s
UNION ALL
SELECT coalesce(_id, '') FROM {rejects} WHERE page = %(page)s;
