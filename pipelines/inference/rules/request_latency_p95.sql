-- # p95 of request latency per service: a request is a root span (no parent), as its
-- # entry service saw it. The brief's `api_latency_spike`: p95 > 500 ms is critical.
-- id = "request_latency_p95"
-- alert = "RequestLatencyP95High"
-- severity = "critical"
--
-- [labels]
-- team = "inference"
--
-- [annotations]
-- summary = "p95 request latency of {{ $labels.service }} is {{ $value }} ms (threshold 500 ms)"
-- description = "Over the last window the 95th percentile of root-span duration of {{ $labels.service }} was {{ $value }} ms. The evidence lists the slowest traces; open them to find the slow stage."
SELECT
    service,
    percentile_cont(duration_ms, 0.95) AS value,
    count(*) AS evidence_requests,
    max(duration_ms) AS evidence_max_ms,
    array_slice(array_agg(trace_id ORDER BY duration_ms DESC), 1, 5) AS sample_trace_ids
FROM spans
WHERE is_root AND service IS NOT NULL
GROUP BY service
HAVING percentile_cont(duration_ms, 0.95) > 500
