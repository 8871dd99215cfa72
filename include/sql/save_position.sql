-- Where the staging tables stand in the source's change stream, written in the
-- transaction that brings them there; keyed by their staging name "<schema>.<table>".
INSERT INTO {positions} (target_table, position) VALUES (%(staged_name)s, %(position)s)
ON CONFLICT (target_table) DO UPDATE SET position = excluded.position;
