//! The one emit path both drivers share: an emission's outputs go to the sink (and alerts
//! to the Alertmanager, best effort); its released input messages come back once every one
//! of those outputs is delivered — never before.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use super::Emission;
use crate::config::PipelineConfig;
use crate::error::Result;
use crate::model::AckId;
use crate::output::OutputKind;
use crate::sink::{AlertmanagerSink, Sink};

/// The released messages of one emission and how many outputs it had.
type Delivered = BoxFuture<'static, Result<(Vec<AckId>, usize)>>;

pub struct Emitter {
    sink: Box<dyn Sink>,
    alertmanager: Option<AlertmanagerSink>,
    in_flight: FuturesUnordered<Delivered>,
    in_flight_outputs: usize,
    /// Outputs sent per kind since [`Emitter::take_sent`] (for the metrics).
    sent: BTreeMap<OutputKind, u64>,
    /// Confidences of the suggestions sent since then.
    confidences: Vec<f64>,
}

impl Emitter {
    pub fn new(sink: Box<dyn Sink>, config: &PipelineConfig) -> Self {
        Emitter {
            sink,
            alertmanager: config
                .alertmanager
                .as_ref()
                .map(|a| AlertmanagerSink::new(&a.url, a.timeout)),
            in_flight: FuturesUnordered::new(),
            in_flight_outputs: 0,
            sent: BTreeMap::new(),
            confidences: Vec::new(),
        }
    }

    /// Sends an emission's outputs; its released messages come back from
    /// [`Emitter::delivered`] once all of them are delivered.
    pub fn emit(&mut self, em: Emission) -> Result<()> {
        if let Some(am) = &mut self.alertmanager {
            am.forward(&em.outputs);
        }
        let outputs = em.outputs.len();
        for o in &em.outputs {
            *self.sent.entry(o.kind).or_default() += 1;
            if o.kind == OutputKind::Suggestions {
                self.confidences.extend(confidence(&o.json));
            }
        }
        let deliveries = em
            .outputs
            .iter()
            .map(|o| self.sink.send(o))
            .collect::<Result<Vec<_>>>()?;
        let released = em.released;
        self.in_flight_outputs += outputs;
        self.in_flight.push(Box::pin(async move {
            for d in deliveries {
                d.await?;
            }
            Ok((released, outputs))
        }));
        Ok(())
    }

    /// Outputs sent per kind since the last call.
    pub fn take_sent(&mut self) -> BTreeMap<OutputKind, u64> {
        std::mem::take(&mut self.sent)
    }

    /// Confidences of the suggestions sent since the last call.
    pub fn take_confidences(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.confidences)
    }

    /// Outputs sent and not yet acknowledged.
    pub fn in_flight_outputs(&self) -> usize {
        self.in_flight_outputs
    }

    /// The released messages of the next fully delivered emission (pending forever when
    /// nothing is in flight).
    pub async fn delivered(&mut self) -> Result<Vec<AckId>> {
        match self.in_flight.next().await {
            Some(done) => Ok(self.settle(done?)),
            None => std::future::pending().await,
        }
    }

    /// The released messages of every emission already delivered (file and stdout sinks
    /// deliver on write).
    pub fn ready(&mut self) -> Result<Vec<AckId>> {
        let mut acks = Vec::new();
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            acks.extend(self.settle(done?));
        }
        Ok(acks)
    }

    fn settle(&mut self, (acks, outputs): (Vec<AckId>, usize)) -> Vec<AckId> {
        self.in_flight_outputs -= outputs;
        acks
    }

    /// Waits for every delivery in flight (a checkpoint): the released messages of all.
    pub async fn settle_all(&mut self) -> Result<Vec<AckId>> {
        let mut acks = Vec::new();
        while let Some(done) = self.in_flight.next().await {
            acks.extend(self.settle(done?));
        }
        Ok(acks)
    }

    /// Forgets every delivery in flight: their transaction was aborted, and the messages
    /// they would release are read again.
    pub fn discard(&mut self) {
        self.in_flight = FuturesUnordered::new();
        self.in_flight_outputs = 0;
    }

    /// Flushes the sink, lets the Alertmanager forwarder finish, and waits for every
    /// delivery: the released messages of all of them.
    pub async fn close(&mut self) -> Result<Vec<AckId>> {
        self.sink.flush()?;
        if let Some(am) = &mut self.alertmanager {
            am.drain().await;
        }
        let mut acks = Vec::new();
        while let Some(done) = self.in_flight.next().await {
            acks.extend(self.settle(done?));
        }
        Ok(acks)
    }
}

/// A suggestion record's `confidence` (suggestions are few: parsing them again is cheap).
fn confidence(json: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get("confidence")?.as_f64()
}
