-- Each publish attempt takes the lock it will need before changing any row, so an
-- attempt that has to wait has done no work: SHARE UPDATE EXCLUSIVE, ANALYZE's lock,
-- which lets readers and writers go on and only keeps a vacuum or another ANALYZE off.
LOCK TABLE {live} IN SHARE UPDATE EXCLUSIVE MODE;
