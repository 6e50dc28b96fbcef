-- severity = "warning"
SELECT count(*) AS n FROM spans
