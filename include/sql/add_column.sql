-- A changed mapping, applied to a live table in publish's transaction: a column
-- it adds (NOT NULL only once the rows are in), drops, or retypes (its values are
-- then written again from the staging table).
ALTER TABLE {live} ADD COLUMN {column} {type};
