-- severity = "warning"
-- fire = "value > $high"
SELECT count(*) AS value FROM spans
