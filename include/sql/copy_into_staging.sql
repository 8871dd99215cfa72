-- One of a target's staging tables (the table, its rejects or a child table) from
-- COPY text; the column list is that table's (target.Tables.columns).
COPY {staging} ({columns}) FROM STDIN;
