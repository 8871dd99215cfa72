-- How values are written as text, fixed for the rest of the transaction: a fingerprint
-- must not change with the session's settings (a role's TimeZone or DateStyle, a
-- person's bytea_output), or the next run would take the table for changed by someone.
SET LOCAL TimeZone = 'UTC';

SET LOCAL DateStyle = 'ISO, YMD';

SET LOCAL IntervalStyle = 'postgres';

SET LOCAL bytea_output = 'hex';

SET LOCAL extra_float_digits = 1;
