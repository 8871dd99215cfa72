-- The column list comes from COLUMNS in plugins/mongo_migration/documents.py.
COPY {staging} ({columns}) FROM STDIN;
