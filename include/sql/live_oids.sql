-- The object ids of a target's live tables (%(names)s, qualified; null: none): a table
-- dropped and made again (a restore from a backup, say) has another.
SELECT name, to_regclass(name)::oid::bigint FROM unnest(%(names)s::text[]) AS name;
