-- severity = "loud"
SELECT count(*) AS value FROM spans
