-- A table's rows and how many of them hold NULL in each column given (for each, a
-- ", count(*) - count(column)"), over the run's copy of the table or the live table.
SELECT count(*){nulls} FROM {rows} AS counted;
