SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM {rejects});
