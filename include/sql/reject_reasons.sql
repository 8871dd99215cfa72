SELECT reason, count(*) FROM {rejects} GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 10;
