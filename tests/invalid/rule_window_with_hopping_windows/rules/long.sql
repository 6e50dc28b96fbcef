-- severity = "warning"
-- window = "4m"
SELECT count(*) AS value FROM spans
