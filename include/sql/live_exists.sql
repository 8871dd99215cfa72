-- Which of a target's live tables (%(names)s, qualified) exist.
SELECT name, to_regclass(name) IS NOT NULL FROM unnest(%(names)s::text[]) AS name;
