-- # Front-end errors reported by browser monitoring: uncaught exceptions, unhandled promise
-- # rejections, failed resource loads (the `browser_error` signature), per service and kind.
-- id = "browser_errors"
-- alert = "BrowserErrors"
--
-- [annotations]
-- summary = "{{ $value }} browser errors ({{ $labels.form }}) on {{ $labels.service }} in a window"
-- description = "Most seen: {{ $evidence.error_type }} {{ $evidence.message }} at {{ $evidence.source }} (url {{ $evidence.url }}). A new deploy shipping a broken bundle or a failing CDN/API call are the usual causes."
SELECT service,
       coalesce(signature_fields['form'], 'unknown') AS form,
       count(*) AS value,
       min(signature_fields['error_type']) AS evidence_error_type,
       min(signature_fields['message']) AS evidence_message,
       min(signature_fields['source']) AS evidence_source,
       min(signature_fields['url']) AS evidence_url
FROM logs
WHERE signature = 'browser_error' AND service IS NOT NULL
GROUP BY service, coalesce(signature_fields['form'], 'unknown')
HAVING count(*) >= $browser_errors_min
