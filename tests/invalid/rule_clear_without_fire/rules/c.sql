-- severity = "warning"
-- clear = "value < 1"
SELECT count(*) AS value FROM spans
