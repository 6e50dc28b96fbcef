-- severity = "info"
SELECT count(*) AS value FROM spans
