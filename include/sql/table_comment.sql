-- The live table's comment, which publish keeps but for its own last line.
SELECT obj_description(%(live)s::regclass, 'pg_class');
