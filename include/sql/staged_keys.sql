-- The keys the run's staging tables hold (the table's and its rejects'), as their
-- writes counted them: how many, and the sum of their hashes (text, exactly).
SELECT coalesce(sum(keys), 0), coalesce(sum(key_hash), 0)::text
FROM {staged_keys} WHERE staging_table = ANY(%(names)s);
