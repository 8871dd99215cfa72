-- The column list comes from COLUMNS in plugins/mongo_migration/documents.py.
COPY {table} ({columns}) FROM STDIN;
