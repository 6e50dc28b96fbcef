-- # vLLM: requests queued for a free slot (gauge vllm:num_requests_waiting). A queue that
-- # stays long means the engine is saturated (or preempting for lack of KV cache).
-- id = "vllm_requests_waiting"
-- alert = "VllmRequestsWaiting"
-- for = "2m"
--
-- [annotations]
-- summary = "{{ $value }} requests wait in vLLM on {{ $labels.host }} ({{ $labels.service }}), threshold {{ $params.vllm_waiting }}"
SELECT service, host, max(value) AS value
FROM metrics
WHERE name = 'vllm:num_requests_waiting'
GROUP BY service, host
HAVING max(value) > $vllm_waiting
