//! The ground floor: the plain data every stage shares, and nothing else. No stage logic,
//! no I/O, no clock; every other module may import it and it imports none of them.
//!
//! - [`attributes`]: a record's attributes (`Attributes`, sorted key-value pairs).
//! - [`record`]: decoded records (`LogRecord`, `MetricPoint`, `SpanRecord`), `EventTime`,
//!   `Signal`, `Location` (topic/partition/offset or file:line).
//! - [`ids`]: `TraceId` and `SpanId`, OpenTelemetry's ids as bytes (hex only as text).
//! - [`flow`]: how input is tracked through the stages: `AckId`, `PartitionKey` (with its
//!   shard).
//! - [`batch`]: what alignment hands to rules and detectors: `Window`, `AlignedBatch`,
//!   `TraceSummary`, and `Late` records.
//! - [`parsed`]: what log cleaning found in a log record (`ParsedLog`).
//! - [`query`]: what a rule or detector asks of each window (`Query`: SQL, parameters, its
//!   `file:line`).
//! - [`saved`]: a stage's saved state for checkpoints (`Saved`, a CBOR value).
//! - [`finding`]: what rules and detectors hand to the alert stage: `AlertSpec` (the alert a
//!   rule or detector produces), `QueryRow` (one result row of a SQL query) and `Finding`
//!   (a row with its spec and its fire/keep/clear `Verdict`).

pub mod attributes;
pub mod batch;
pub mod finding;
pub mod flow;
pub mod ids;
pub mod parsed;
pub mod query;
pub mod record;
pub mod saved;

pub use attributes::Attributes;
pub use batch::{AlignedBatch, Late, TraceSummary, Window};
pub use finding::{AlertSpec, Finding, Param, QueryRow, Severity, Verdict};
pub use flow::{AckId, PartitionKey};
pub use ids::{HexId, SpanId, TraceId};
pub use parsed::ParsedLog;
pub use query::Query;
pub use record::*;
