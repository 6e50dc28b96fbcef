//! Collectors that run beside the workloads and produce telemetry for the pipeline:
//! `faultline agent gpu` samples NVIDIA GPUs through NVML and writes OTLP metrics,
//! `faultline agent env` snapshots environment variables as OTLP logs (secrets redacted);
//! both to a topic as protobuf (the Collector's encoding) or to a file as OTLP/JSON lines.

pub mod env;
pub mod gpu;

use std::io::Write;
use std::path::PathBuf;

use prost::Message;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sink::TopicWriter;

/// Where an agent writes.
pub enum Destination {
    /// OTLP/JSON lines appended to a file (what `faultline run --input` reads).
    File(PathBuf),
    /// OTLP protobuf to a Kafka topic.
    Kafka(TopicWriter),
}

impl Destination {
    /// Writes one export request, keyed by `key` on Kafka.
    pub async fn write(&mut self, key: &str, request: &(impl Message + Serialize)) -> Result<()> {
        match self {
            Destination::File(path) => {
                let io = |source| Error::Io {
                    path: path.clone(),
                    source,
                };
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .map_err(io)?;
                let line =
                    serde_json::to_string(request).map_err(|e| Error::Internal(e.to_string()))?;
                writeln!(f, "{line}").map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })
            }
            Destination::Kafka(w) => w.send(key, &request.encode_to_vec()).await,
        }
    }
}
