-- # CUDA out of memory (PyTorch, TensorFlow, the CUDA runtime), per host and GPU, from the
-- # `cuda_oom` failure signature of the log cleaner.
-- id = "cuda_out_of_memory"
-- alert = "CudaOutOfMemory"
-- severity = "critical"
--
-- [annotations]
-- summary = "CUDA out of memory on {{ $labels.host }} GPU {{ $labels.device }} ({{ $labels.service }}): {{ $value }} failed allocations"
-- description = "Largest request {{ $evidence.requested_gib }} GiB with {{ $evidence.free_gib }} GiB free of {{ $evidence.capacity_gib }} GiB. Reduce the batch size or sequence length, enable activation checkpointing, or check for another process holding the GPU (nvidia-smi)."
SELECT service,
       coalesce(host, 'unknown') AS host,
       coalesce(signature_fields['device'], 'unknown') AS device,
       count(*) AS value,
       round(max(CAST(signature_fields['requested_bytes'] AS DOUBLE)) / 1073741824.0, 2) AS evidence_requested_gib,
       round(min(CAST(signature_fields['free_bytes'] AS DOUBLE)) / 1073741824.0, 2) AS evidence_free_gib,
       round(max(CAST(signature_fields['capacity_bytes'] AS DOUBLE)) / 1073741824.0, 2) AS evidence_capacity_gib
FROM logs
WHERE signature = 'cuda_oom' AND service IS NOT NULL
GROUP BY service, coalesce(host, 'unknown'), coalesce(signature_fields['device'], 'unknown')
