-- A run's staging tables made again: what the last run's staged keys counted goes.
DELETE FROM {staged_keys} WHERE staging_table = ANY(%(names)s);
