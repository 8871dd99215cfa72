-- Then the rows whose content changed (page is where they were read, not content).
-- The documents compare as text: jsonb's equality takes 42 and 42.0 for equal,
-- though they read back as an int32 and a double.
UPDATE {live} AS live
SET username = staged.username, email = staged.email, age = staged.age,
    created_at = staged.created_at, document = staged.document, page = staged.page
FROM {staging} AS staged
WHERE staged._id = live._id
  AND (live.username, live.email, live.age, live.created_at, live.document::text)
      IS DISTINCT FROM (staged.username, staged.email, staged.age, staged.created_at, staged.document::text);
