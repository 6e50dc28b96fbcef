//! faultline: streaming diagnostics for AI/ML services.
//!
//! Logs, metrics and traces (OTLP protobuf, OTLP/JSON or flat JSON) come in from Kafka or
//! files, are decoded into records, aligned into event-time windows of Arrow tables,
//! evaluated by SQL rules with DataFusion, and turned into Alertmanager-compatible alerts.
//! Undecodable input goes to a dead-letter output, too-late records to a late output.
//!
//! Modules, in pipeline order (see `ARCHITECTURE.md` for their layers):
//! - [`model`]: the vocabulary every stage shares (records, windows, findings).
//! - [`load`]: the one reader of a pipeline directory and the one validation path.
//! - [`broker`]: Kafka client plumbing: connecting, quiet librdkafka contexts.
//! - [`source`]: files and Kafka in; offset bookkeeping.
//! - [`decode`]: wire formats into [`model`] records.
//! - [`align`]: event-time windows and watermarks; [`tables`] builds their Arrow tables.
//! - [`rules`]: SQL rule files and their evaluation.
//! - [`detect`]: sliding-window detectors over SQL sources.
//! - [`logparse`]: structured log fields, template mining, failure signatures.
//! - [`alert`]: findings into alerts.
//! - [`kb`]: the knowledge base: alerts into suggested remediations with a confidence.
//! - [`output`], [`sink`]: output records, files and Kafka out.
//! - [`pipeline`]: the hub, the at-least-once ledger, the shard chain, and the file, Kafka
//!   and replay drivers.
//! - [`ruletest`]: `faultline test`, unit tests of rules over the real pipeline.
//! - [`agent`]: collectors that produce telemetry (the NVML GPU agent).
//! - [`config`], [`error`], [`cli`].

pub mod agent;
pub mod alert;
pub mod align;
pub mod broker;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod error;
pub mod incident;
pub mod kb;
pub mod load;
pub mod logparse;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod rules;
pub mod ruletest;
pub mod sink;
pub mod source;
pub mod tables;

pub use error::{Error, Result};
