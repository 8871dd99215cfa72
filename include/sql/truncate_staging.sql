-- What an earlier try of open_change_stream put in the staging tables ({tables}).
TRUNCATE {tables};
