//! Collectors that run beside the workloads and produce telemetry for the pipeline:
//! `faultline agent gpu` samples NVIDIA GPUs through NVML and writes OTLP metrics,
//! `faultline agent env` snapshots environment variables as OTLP logs (secrets redacted);
//! both to a topic as protobuf (the Collector's encoding) or to a file as OTLP/JSON lines.

pub mod env;
pub mod gpu;
