-- What verify read of the source for one comparison, no longer needed.
DROP TABLE IF EXISTS {read_again};
