-- severity = "warning"
SELECT count(*) AS value FROM read_csv('/etc/passwd')
