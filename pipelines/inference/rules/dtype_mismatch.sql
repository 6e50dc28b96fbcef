-- # Tensor dtype mismatches (`expected scalar type Float but found Double` and kin), from the
-- # `dtype_mismatch` failure signature.
-- id = "dtype_mismatch"
-- alert = "TensorDtypeMismatch"
-- severity = "critical"
--
-- [annotations]
-- summary = "{{ $labels.service }}: dtype mismatch, expected {{ $labels.expected }} but found {{ $labels.actual }}"
-- description = "{{ $value }} failures in this window. Cast the input (or load the checkpoint) to the model's dtype, or check mixed-precision (autocast) settings."
SELECT service,
       coalesce(signature_fields['expected'], 'unknown') AS expected,
       coalesce(signature_fields['actual'], 'unknown') AS actual,
       count(*) AS value
FROM logs
WHERE signature = 'dtype_mismatch' AND service IS NOT NULL
GROUP BY service, coalesce(signature_fields['expected'], 'unknown'), coalesce(signature_fields['actual'], 'unknown')
