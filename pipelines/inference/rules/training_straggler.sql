-- # A straggler: a rank of a synchronous training job whose own compute per iteration
-- # (forward-backward, from the per-rank timer line trainers print) is 25 % above its job's
-- # median; every collective waits for it, so the whole job runs at its pace.
-- id = "training_straggler"
-- alert = "TrainingStraggler"
-- severity = "warning"
--
-- [annotations]
-- summary = "rank {{ $labels.rank }} of {{ $labels.service }} computes {{ $value }}x its peers' median ({{ $evidence.ms }} ms vs {{ $evidence.job_ms }} ms per iteration)"
WITH t AS (
    SELECT service, attributes['rank'] AS rank,
           median(CAST(regexp_match(body, 'forward-backward: ([0-9.]+) ms')[1] AS DOUBLE)) AS ms
    FROM logs
    WHERE service IS NOT NULL AND attributes['rank'] IS NOT NULL
      AND body LIKE '%forward-backward: %'
    GROUP BY service, attributes['rank']
),
job AS (SELECT service, median(ms) AS ms FROM t GROUP BY service)
SELECT t.service, t.rank, round(t.ms / job.ms, 2) AS value,
       round(t.ms, 1) AS evidence_ms, round(job.ms, 1) AS evidence_job_ms
FROM t JOIN job ON job.service = t.service
WHERE job.ms > 0 AND t.ms > 1.25 * job.ms
