-- Each publish attempt takes the table locks it will need before changing any row,
-- so an attempt that waits for one has changed nothing: SHARE UPDATE EXCLUSIVE on the
-- live tables that exist ({relations}), ANALYZE's lock, which lets readers and writers go
-- on and only keeps a vacuum or another ANALYZE off; ACCESS EXCLUSIVE on those whose
-- columns a changed mapping adds, drops or retypes ({mode} names which).
LOCK TABLE {relations} IN {mode} MODE;
