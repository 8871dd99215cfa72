SELECT _id FROM {staging} WHERE page = %(page)s
UNION ALL
SELECT coalesce(_id, '') FROM {staging_rejects} WHERE page = %(page)s;
