-- # GenAI semantic conventions: gen_ai.server.time_per_output_token (histogram, seconds).
-- id = "genai_time_per_output_token"
-- alert = "GenAiTimePerOutputTokenHigh"
-- for = "2m"
--
-- [annotations]
-- summary = "mean time per output token of {{ $labels.service }} ({{ $labels.model }}) is {{ $value }} s (threshold {{ $params.tpot_seconds }} s)"
WITH points AS (
    SELECT service,
           coalesce(attributes['gen_ai.request.model'], attributes['gen_ai.response.model'], '') AS model,
           temporality, count, sum
    FROM metrics
    WHERE name = 'gen_ai.server.time_per_output_token' AND count IS NOT NULL
),
series AS (
    SELECT service, model,
           CASE WHEN max(temporality) = 'cumulative' THEN max(sum) - min(sum) ELSE sum(sum) END AS total,
           CASE WHEN max(temporality) = 'cumulative'
                THEN CAST(max(count) - min(count) AS DOUBLE)
                ELSE CAST(sum(count) AS DOUBLE) END AS n
    FROM points
    GROUP BY service, model
)
SELECT service, model, total / n AS value, n AS evidence_tokens_observed
FROM series
WHERE n > 0 AND total / n > $tpot_seconds
