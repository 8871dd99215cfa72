-- One staging table, with the name, columns and indexes its live table gets when
-- publish moves it into the target schema. The target table: one row per MongoDB
-- document, its _id key, the mapping's typed columns, "document" (the whole
-- document as MongoDB Extended JSON, so fields without a column of their own are
-- never lost, unless the mapping says keep_document: false) and "page", the
-- migration page that wrote the row (-1: the catch-up), so a retried page replaces
-- exactly its rows. A child table: a row per element of an array, keyed by the
-- document's _id and the element's index. The rejects table: each document that
-- cannot be written faithfully, whole (its BSON as the server sent it), with the
-- column, path, types and reason.
DROP TABLE IF EXISTS {staging};

CREATE TABLE {staging} ({definitions});

CREATE INDEX ON {staging} (page);
