//! Sinks: where outputs go — Kafka topics, files in an output directory, or stdout; alerts
//! may also be forwarded to an Alertmanager.
//!
//! A sink reports delivery through the future [`Sink::send`] returns; the pipeline commits
//! input offsets only after those futures resolve.

mod alertmanager;
mod file;
mod kafka;
mod otlp;
mod state;
mod transaction;

pub use alertmanager::AlertmanagerSink;
pub use file::{FileSink, StdoutSink};
pub use kafka::{output_producer, KafkaSink, TopicWriter};
pub use otlp::OtlpHttp;
pub use state::{ensure_state_topic, MAX_SNAPSHOT_BYTES};
pub use transaction::{Transactions, TxnFailure};

use futures::future::BoxFuture;

use crate::error::Result;
use crate::output::Output;

/// Resolves once the output is durably written (acknowledged by the broker, or written to
/// the file).
pub type Delivery = BoxFuture<'static, Result<()>>;

/// A destination for outputs.
pub trait Sink {
    /// Queues one output. Retriable back-pressure (a full queue) is handled inside; an error
    /// here is fatal for the pipeline.
    fn send(&mut self, output: &Output) -> Result<Delivery>;

    /// Writes out anything buffered; returns when it is durable.
    fn flush(&mut self) -> Result<()>;
}
