-- # p95 of request latency per service: a request is a trace's root span, as its entry
-- # service saw it. The brief's `api_latency_spike`: p95 > 500 ms for 5 minutes is critical.
-- # The evidence names the bottleneck stage: the span (tokenize, forward, decode, ...) with
-- # the most exclusive time in most of the slow requests.
-- id = "request_latency_p95"
-- alert = "RequestLatencyP95High"
-- severity = "critical"
-- for = "5m"
--
-- [annotations]
-- summary = "p95 request latency of {{ $labels.service }} is {{ $value }} ms (threshold {{ $params.latency_p95_ms }} ms); bottleneck: {{ $evidence.bottleneck_stage }} on {{ $evidence.bottleneck_service }}"
-- description = "For at least 5 minutes the 95th percentile of request duration of {{ $labels.service }} has been above {{ $params.latency_p95_ms }} ms. In the slow requests most time is spent in {{ $evidence.bottleneck_stage }} ({{ $evidence.bottleneck_service }}), {{ $evidence.bottleneck_share }} of the request on average. The evidence lists the slowest traces."
WITH requests AS (
    SELECT root_service AS service, trace_id, duration_ms
    FROM traces
    WHERE has_root AND root_service IS NOT NULL
),
latency AS (
    SELECT service,
           percentile_cont(duration_ms, 0.95) AS p95,
           count(*) AS requests,
           max(duration_ms) AS max_ms
    FROM requests
    GROUP BY service
),
-- The five slowest requests, ranked only for the services over the threshold: ranking every
-- request of a busy window costs more than all the rest of the rule.
slowest AS (
    SELECT service, array_agg(trace_id ORDER BY place) AS trace_ids
    FROM (
        SELECT r.service, r.trace_id,
               row_number() OVER (
                   PARTITION BY r.service ORDER BY r.duration_ms DESC, r.trace_id
               ) AS place
        FROM requests r
        JOIN latency l ON l.service = r.service AND l.p95 > $latency_p95_ms
    )
    WHERE place <= 5
    GROUP BY service
),
stages AS (
    SELECT root_service AS service,
           bottleneck_span AS stage,
           bottleneck_service,
           avg(bottleneck_share) AS share,
           row_number() OVER (
               PARTITION BY root_service ORDER BY count(*) DESC, bottleneck_span
           ) AS rank
    FROM traces
    WHERE has_root AND duration_ms > $latency_p95_ms AND bottleneck_span IS NOT NULL
    GROUP BY root_service, bottleneck_span, bottleneck_service
)
SELECT l.service,
       l.p95 AS value,
       l.requests AS evidence_requests,
       l.max_ms AS evidence_max_ms,
       s.stage AS evidence_bottleneck_stage,
       s.bottleneck_service AS evidence_bottleneck_service,
       round(s.share, 3) AS evidence_bottleneck_share,
       w.trace_ids AS sample_trace_ids
FROM latency l
JOIN slowest w ON w.service = l.service
LEFT JOIN stages s ON s.service = l.service AND s.rank = 1
WHERE l.p95 > $latency_p95_ms
