-- A staging table about to move in as a live table leaves its staged keys' triggers
-- (count_keys.sql) behind.
DROP TRIGGER IF EXISTS staged_keys_inserted ON {staging};
DROP TRIGGER IF EXISTS staged_keys_updated ON {staging};
DROP TRIGGER IF EXISTS staged_keys_deleted ON {staging};
DROP TRIGGER IF EXISTS staged_keys_truncated ON {staging};
