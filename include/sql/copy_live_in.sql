-- An incremental run starts from the live tables as their last publish left them
-- (run once for the table, its rejects and each child table): the catch-up then
-- applies the changes since that publish's point.
INSERT INTO {staging} ({columns}) SELECT {columns} FROM {live};
