-- # NCCL failures in distributed training: watchdog timeouts, `NCCL WARN`, `unhandled system
-- # error` and the like, from the `nccl` failure signature; names the ranks and collective.
-- id = "nccl_failure"
-- alert = "NcclCollectiveFailure"
-- severity = "critical"
--
-- [annotations]
-- summary = "NCCL {{ $labels.error }} in {{ $labels.service }} (ranks {{ $evidence.ranks }}, collective {{ $evidence.collective }})"
-- description = "{{ $value }} NCCL errors in this window; last sequence number {{ $evidence.seq }}, timeout {{ $evidence.timeout_ms }} ms. A rank that stopped (see TrainingRankSilent) or a network fault stalls every collective: check the slowest rank's host, its NIC and NCCL_DEBUG=INFO output."
SELECT service,
       coalesce(signature_fields['error'], 'unknown') AS error,
       count(*) AS value,
       array_to_string(array_distinct(array_agg(signature_fields['rank']) FILTER (WHERE signature_fields['rank'] IS NOT NULL)), ',') AS evidence_ranks,
       min(signature_fields['collective']) AS evidence_collective,
       max(CAST(signature_fields['seq'] AS BIGINT)) AS evidence_seq,
       max(CAST(signature_fields['timeout_ms'] AS BIGINT)) AS evidence_timeout_ms
FROM logs
WHERE signature = 'nccl' AND service IS NOT NULL
GROUP BY service, coalesce(signature_fields['error'], 'unknown')
