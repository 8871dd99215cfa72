COMMENT ON TABLE {live} IS {comment};
