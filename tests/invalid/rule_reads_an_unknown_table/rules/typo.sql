-- severity = "warning"

SELECT count(*) AS value
FROM spanz
