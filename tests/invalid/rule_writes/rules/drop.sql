-- severity = "warning"
DROP TABLE spans
