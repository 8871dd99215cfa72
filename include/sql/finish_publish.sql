-- Statistics before readers see the new rows (run for each live table), and its
-- staging table goes.
ANALYZE {live};

DROP TABLE IF EXISTS {staging};
