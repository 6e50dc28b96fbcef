-- # Test fixture: the latency rule without `for`, so one slow window fires at once.
-- id = "latency_p95_now"
-- alert = "RequestLatencyP95High"
-- severity = "critical"
-- [annotations]
-- summary = "p95 request latency of {{ $labels.service }} is {{ $value }} ms"
SELECT service,
       percentile_cont(duration_ms, 0.95) AS value,
       count(*) AS evidence_requests,
       array_slice(array_agg(trace_id ORDER BY duration_ms DESC, trace_id), 1, 5) AS sample_trace_ids
FROM spans
WHERE is_root AND service IS NOT NULL
GROUP BY service
HAVING percentile_cont(duration_ms, 0.95) > 500
