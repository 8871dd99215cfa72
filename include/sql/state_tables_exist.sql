-- Whether the shared state tables exist, whatever version made them: a read of the
-- catalog, which locks nothing.
SELECT to_regclass(%(published)s) IS NOT NULL AND to_regclass(%(positions)s) IS NOT NULL;
