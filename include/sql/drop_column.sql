ALTER TABLE {live} DROP COLUMN {column};
