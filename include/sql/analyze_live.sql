-- Statistics before readers see the new rows (run for each live table) after a
-- full copy; an incremental run's few changes leave them to autovacuum.
ANALYZE {live};
