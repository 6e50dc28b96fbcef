-- severity = "warning"
SELECT name AS value FROM spans
