-- Published: the staging table goes.
DROP TABLE IF EXISTS {staging};
