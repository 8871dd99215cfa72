-- An incremental run's staging tables hold only the documents changed since the
-- published point: this table lists their _id keys (a document deleted has its
-- key here and no row), and its existence makes the run incremental.
CREATE TABLE {changed} (_id text COLLATE "C" PRIMARY KEY);
