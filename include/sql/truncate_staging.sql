-- What an earlier try of open_change_stream put in the staging tables ({relations}).
TRUNCATE {relations};
