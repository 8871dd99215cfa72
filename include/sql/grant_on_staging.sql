-- One privilege of a live table (from live_grants.sql), granted again on the staging table
-- that replaces it. {privilege} is checked against target.PRIVILEGES before it gets here.
GRANT {privilege} ON {relation} TO {grantee}{grant_option};
