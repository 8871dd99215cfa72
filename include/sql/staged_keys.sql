-- The keys the run's staging tables hold (the table's and its rejects'), as their
-- writes counted them: how many, the sum of their hashes (text, exactly), and the number
-- of the last statement that wrote to them (null: none since they were made).
SELECT coalesce(sum(keys), 0), coalesce(sum(key_hash), 0)::text, max(write)
FROM {staged_keys} WHERE staging_table = ANY(%(names)s);
