-- Every statement of the transaction sees the same snapshot.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
