-- Then the rows whose content changed (page is where they were read, not content).
-- jsonb, numeric and double precision values compare as text: jsonb's equality
-- takes 42 and 42.0 for equal (an int32 and a double), numeric's 1.0 and 1.00,
-- double precision's 0 and -0.
UPDATE {live} AS live
SET ({assigned}) = ({staged_values})
FROM {staging} AS staged
WHERE ({staged_key}) = ({live_key})
  AND ({live_compared}) IS DISTINCT FROM ({staged_compared});
