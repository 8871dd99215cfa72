-- A child table the mapping no longer has.
DROP TABLE {live};
