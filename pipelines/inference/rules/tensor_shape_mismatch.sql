-- # Tensor shape mismatches (PyTorch, TensorFlow/Keras): a model and its input or checkpoint
-- # disagree. From the `shape_mismatch` failure signature; usually a deploy problem.
-- id = "tensor_shape_mismatch"
-- alert = "TensorShapeMismatch"
-- severity = "critical"
--
-- [annotations]
-- summary = "{{ $labels.service }}: tensor shape mismatch ({{ $labels.form }}), expected {{ $evidence.expected }} but got {{ $evidence.actual }}"
-- description = "{{ $value }} failures in this window. A model, checkpoint or preprocessing step changed shape: compare the deployed checkpoint and input pipeline with the model definition."
SELECT service,
       coalesce(signature_fields['form'], 'unknown') AS form,
       count(*) AS value,
       min(signature_fields['expected']) AS evidence_expected,
       min(signature_fields['actual']) AS evidence_actual,
       min(signature_fields['param']) AS evidence_param
FROM logs
WHERE signature = 'shape_mismatch' AND service IS NOT NULL
GROUP BY service, coalesce(signature_fields['form'], 'unknown')
