SELECT reason, count(*) FROM {staging_rejects} GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 10;
