-- # Share of requests (root spans) that failed, per service, in percent.
-- id = "request_error_rate"
-- alert = "RequestErrorRateHigh"
-- severity = "warning"
--
-- [annotations]
-- summary = "{{ $value }}% of requests to {{ $labels.service }} fail (threshold {{ $params.error_rate_percent }}%)"
-- description = "{{ $evidence.errors }} of {{ $evidence.requests }} requests to {{ $labels.service }} ended with status error in this window."
SELECT service,
       100.0 * sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) / count(*) AS value,
       sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS evidence_errors,
       count(*) AS evidence_requests,
       -- The first five failed traces by id. Sorted after aggregating: an ordered
       -- array_agg would sort every request of the window, not only the failed ones.
       array_slice(
           array_sort(array_agg(trace_id) FILTER (WHERE status = 'error')),
           1, 5
       ) AS sample_trace_ids
FROM spans
WHERE is_root AND service IS NOT NULL
GROUP BY service
HAVING count(*) >= $min_requests
   AND 100.0 * sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) / count(*) > $error_rate_percent
