-- Which of these _id keys the staging tables hold, as rows or rejects.
SELECT _id FROM {staging} WHERE _id = ANY(%(keys)s)
UNION
SELECT _id FROM {staging_rejects} WHERE _id = ANY(%(keys)s);
