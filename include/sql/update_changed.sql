-- Then the rows whose content changed (page is where they were read, not content).
UPDATE {live} AS live
SET username = staged.username, email = staged.email, age = staged.age,
    created_at = staged.created_at, document = staged.document, page = staged.page
FROM {staging} AS staged
WHERE staged._id = live._id
  AND (live.username, live.email, live.age, live.created_at, live.document)
      IS DISTINCT FROM (staged.username, staged.email, staged.age, staged.created_at, staged.document);
