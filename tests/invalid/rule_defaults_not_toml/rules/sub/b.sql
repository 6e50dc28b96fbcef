SELECT count(*) AS value FROM spans
