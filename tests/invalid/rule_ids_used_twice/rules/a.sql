-- id = "same"
-- severity = "warning"
SELECT count(*) AS value FROM spans
