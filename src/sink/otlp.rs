//! OTLP/HTTP export to a collector (`run --otlp-endpoint`): protobuf request bodies posted
//! to `{endpoint}/v1/metrics` and `{endpoint}/v1/traces`, as the OpenTelemetry Collector's
//! `otlp` receiver takes them on its HTTP port (4318).

use std::time::Duration;

use prost::Message;

/// A collector's OTLP/HTTP receiver.
pub struct OtlpHttp {
    agent: ureq::Agent,
    base: String,
}

impl OtlpHttp {
    /// `endpoint` is the receiver's base URL, e.g. `http://127.0.0.1:4318`.
    pub fn new(endpoint: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        OtlpHttp {
            agent,
            base: endpoint.trim_end_matches('/').to_string(),
        }
    }

    /// Posts `request` to `{endpoint}/v1/{signal}`; the error says why it was not taken.
    pub fn post(&self, signal: &str, request: &impl Message) -> Result<(), String> {
        let url = format!("{}/v1/{signal}", self.base);
        self.agent
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .send(&request.encode_to_vec()[..])
            .map(|_| ())
            .map_err(|e| format!("{url}: {e}"))
    }
}
