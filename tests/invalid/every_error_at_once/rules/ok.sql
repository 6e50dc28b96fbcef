-- severity = "warning"
SELECT count(*) AS value FROM spans
