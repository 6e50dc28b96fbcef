-- # Test-only rule for `faultline test`'s own tests: any metric series whose value reaches 30
-- # in a window.
-- alert = "SeriesAtLeast30"
-- severity = "info"
--
-- [annotations]
-- summary = "{{ $labels.name }} on {{ $labels.service }} reached {{ $value }}"
SELECT name, service, max(value) AS value
FROM metrics
GROUP BY name, service
HAVING max(value) >= 30
