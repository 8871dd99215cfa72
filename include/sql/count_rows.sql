SELECT (SELECT count(*) FROM {copy} AS copied), (SELECT count(*) FROM {copy_rejects} AS rejects);
