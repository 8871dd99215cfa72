SELECT count(*) FROM {live};
