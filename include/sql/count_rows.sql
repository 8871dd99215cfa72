SELECT (SELECT count(*) FROM {staging}), (SELECT count(*) FROM {staging_rejects});
