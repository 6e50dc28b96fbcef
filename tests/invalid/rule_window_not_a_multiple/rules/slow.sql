-- severity = "warning"
-- window = "90s"
SELECT count(*) AS value FROM spans
