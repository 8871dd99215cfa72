-- An incremental run starts from the live table as its last publish left it:
-- the catch-up then applies the changes since that publish's point.
INSERT INTO {staging} ({columns}) SELECT {columns} FROM {live};

INSERT INTO {staging_rejects} (_id, reason, document, page)
SELECT _id, reason, document, page FROM {live_rejects};
