-- # A service's CPU above 80 % of its limit (percent metrics, or OpenTelemetry utilisation
-- # ratios scaled to percent).
-- id = "cpu_saturated"
-- alert = "CpuSaturated"
-- severity = "warning"
--
-- [annotations]
-- summary = "{{ $labels.service }} uses {{ $value }}% CPU (threshold 80%)"
SELECT service,
       max(CASE WHEN unit = '%' THEN value ELSE 100.0 * value END) AS value
FROM metrics
WHERE service IS NOT NULL AND value IS NOT NULL
  AND (name = 'CpuUsageRate(%)' OR name LIKE '%cpu.utilization')
GROUP BY service
HAVING max(CASE WHEN unit = '%' THEN value ELSE 100.0 * value END) > 80
