-- severity = "warning"
-- for = 5m
SELECT count(*) AS value FROM spans
