-- # vLLM: GPU KV-cache usage (gauge vllm:gpu_cache_usage_perc, 0..1). Near 1 the engine
-- # preempts sequences and latency climbs.
-- id = "vllm_kv_cache_usage"
-- alert = "VllmKvCacheNearlyFull"
-- for = "2m"
--
-- [annotations]
-- summary = "vLLM KV cache on {{ $labels.host }} ({{ $labels.service }}) is {{ $value }} full (threshold {{ $params.vllm_kv_cache_usage }})"
SELECT service, host, max(value) AS value
FROM metrics
WHERE name IN ('vllm:gpu_cache_usage_perc', 'vllm:kv_cache_usage_perc')
GROUP BY service, host
HAVING max(value) > $vllm_kv_cache_usage
