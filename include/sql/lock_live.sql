-- Each publish attempt takes the table locks it will need before changing any row,
-- so an attempt that waits for one has changed nothing: SHARE UPDATE EXCLUSIVE on the
-- live tables that exist ({tables}), ANALYZE's lock, which lets readers and writers go
-- on and only keeps a vacuum or another ANALYZE off.
LOCK TABLE {tables} IN SHARE UPDATE EXCLUSIVE MODE;
