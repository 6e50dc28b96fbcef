-- severity = "warning"
-- window = "61s"
SELECT count(*) AS value FROM spans
