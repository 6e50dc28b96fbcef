//! Sources: where input messages come from — JSON-lines files or Kafka topics — and the
//! bookkeeping of which Kafka offsets may be committed.
//!
//! Sources only read and frame messages; decoding happens in `decode`.

mod feedback;
mod file;
mod kafka;
mod offsets;
mod range;

pub use feedback::{FeedbackMessage, FeedbackSource};
pub use file::{expand_inputs, FileSource, STDIN};
pub use kafka::{KafkaSource, RebalanceContext};
pub use offsets::OffsetTracker;
pub use range::{read_whole_topic, KafkaRange, RangeEnd, RangeStart};

use crate::decode::MessageContext;
use crate::model::Location;

/// One framed input message: a Kafka message or a line of a file.
#[derive(Debug, Clone)]
pub struct InputMessage {
    /// The bytes (possibly cut short when the message was over the size limit).
    pub payload: Vec<u8>,
    /// Size of the whole message in bytes.
    pub size: usize,
    pub source: Location,
    pub context: MessageContext,
}
