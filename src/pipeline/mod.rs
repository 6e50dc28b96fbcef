//! The pipeline: decode → align → rules → alerts, plus the dead-letter and late paths.
//!
//! [`Pipeline`] is the synchronous-in-spirit core (async only because DataFusion is): it
//! takes framed messages and watermarks, and returns outputs with the input messages they
//! release. The drivers in [`run`] connect it to files or Kafka.

pub mod run;

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use tracing::warn;

use crate::alert::AlertBuilder;
use crate::align::{AckId, AlignedBatch, WindowAligner};
use crate::config::PipelineConfig;
use crate::decode::{DecodeError, DecodeErrorKind, Decoder};
use crate::error::Result;
use crate::model::EventTime;
use crate::output::{DeadLetter, LateRecord, Output};
use crate::rules::{load_rules, RuleEngine};
use crate::source::InputMessage;

/// What one step produced: outputs to deliver, and the input messages that are fully
/// processed once those outputs are delivered.
#[derive(Debug, Default)]
pub struct Emission {
    pub outputs: Vec<Output>,
    pub released: Vec<AckId>,
}

/// Counters, logged at the end of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub messages: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub windows: u64,
    pub alerts: u64,
    pub rule_failures: u64,
}

pub struct Pipeline {
    decoder: Decoder,
    aligner: WindowAligner,
    engine: RuleEngine,
    alerts: AlertBuilder,
    max_message_bytes: usize,
    dead_letter_payload_bytes: usize,
    /// Per input message: 1 while being ingested, plus 1 per record held in an open window.
    holds: HashMap<AckId, u32>,
    stats: Stats,
}

impl Pipeline {
    /// Loads the rules of the pipeline in `dir`.
    pub async fn load(dir: &Path, config: &PipelineConfig) -> Result<Self> {
        let rules = load_rules(dir, &config.rules).await?;
        Ok(Pipeline {
            decoder: Decoder::new(config.decode.max_message_bytes),
            aligner: WindowAligner::new(config.window.size, config.window.max_out_of_orderness),
            engine: RuleEngine::new(rules).await?,
            alerts: AlertBuilder::new(&config.name),
            max_message_bytes: config.decode.max_message_bytes,
            dead_letter_payload_bytes: config.decode.dead_letter_payload_bytes,
            holds: HashMap::new(),
            stats: Stats::default(),
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn rule_count(&self) -> usize {
        self.engine.rules().len()
    }

    pub fn watermark(&self) -> EventTime {
        self.aligner.watermark()
    }

    /// Decodes one message, places its records, and evaluates the windows its event times
    /// close.
    pub async fn ingest(&mut self, msg: &InputMessage, ack: AckId) -> Emission {
        let mut em = Emission::default();
        self.stats.messages += 1;
        self.holds.insert(ack, 1);
        let decoded = if msg.size > self.max_message_bytes {
            Err(DecodeError::new(
                DecodeErrorKind::Oversized,
                format!(
                    "message of {} bytes exceeds decode.max_message_bytes ({})",
                    msg.size, self.max_message_bytes
                ),
            ))
        } else {
            self.decoder.decode(&msg.payload, msg.context)
        };
        match decoded {
            Err(error) => {
                self.stats.dead_letters += 1;
                warn!(source = %msg.source, kind = %error.kind, reason = %error.message,
                    "Failed to decode input; sent to dead letter.");
                let mut dl = DeadLetter::new(
                    &error,
                    msg.source.clone(),
                    msg.context.signal,
                    &msg.payload,
                    self.dead_letter_payload_bytes,
                );
                dl.payload_bytes = msg.size;
                dl.payload_truncated |= msg.size > msg.payload.len();
                em.outputs.push(Output::dead_letter(&dl));
            }
            Ok(records) => {
                let mut newest = None;
                for record in records {
                    self.stats.records += 1;
                    let t = record.event_time();
                    newest = newest.max(Some(t));
                    match self.aligner.insert(record, ack) {
                        Ok(()) => *self.holds.get_mut(&ack).expect("held") += 1,
                        Err(late) => {
                            self.stats.late += 1;
                            em.outputs
                                .push(Output::late(&LateRecord::new(&late, msg.source.clone())));
                        }
                    }
                }
                if let Some(t) = newest {
                    let wm = self.aligner.watermark_after(t);
                    let closed = self.aligner.advance(wm);
                    self.evaluate(closed, &mut em).await;
                }
            }
        }
        self.release(ack, &mut em);
        em
    }

    /// Moves the watermark (e.g. when inputs are idle) and evaluates the windows it closes.
    pub async fn advance_watermark(&mut self, watermark: EventTime) -> Emission {
        let mut em = Emission::default();
        let closed = self.aligner.advance(watermark);
        self.evaluate(closed, &mut em).await;
        em
    }

    /// End of input: evaluates every open window.
    pub async fn finish(&mut self) -> Emission {
        let mut em = Emission::default();
        let closed = self.aligner.flush();
        self.evaluate(closed, &mut em).await;
        em
    }

    fn release(&mut self, ack: AckId, em: &mut Emission) {
        if let Some(n) = self.holds.get_mut(&ack) {
            *n -= 1;
            if *n == 0 {
                self.holds.remove(&ack);
                em.released.push(ack);
            }
        }
    }

    async fn evaluate(&mut self, batches: Vec<AlignedBatch>, em: &mut Emission) {
        for batch in batches {
            self.stats.windows += 1;
            let (findings, failures) = self.engine.evaluate(&batch).await;
            for f in failures {
                self.stats.rule_failures += 1;
                warn!(rule = %f.rule_id, window_start = %batch.window.start, error = %f.message,
                    "Rule failed on a window; other rules still ran.");
            }
            for finding in &findings {
                let alert = self.alerts.firing(finding, batch.window);
                self.stats.alerts += 1;
                em.outputs.push(Output::alert(&alert));
            }
            for ack in &batch.acks {
                self.release(*ack, em);
            }
        }
    }
}
