//! Drivers: the pipeline on files (the embedded default) and as a Kafka consumer-group
//! member. Only these touch sources and sinks; the wall clock is read here, never in the
//! pure stages.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::consumer::CommitMode;
use tracing::{info, warn};

use super::{Emission, Pipeline, Stats};
use crate::align::AckId;
use crate::config::PipelineConfig;
use crate::error::Result;
use crate::model::EventTime;
use crate::sink::{Delivery, FileSink, KafkaSink, Sink, StdoutSink};
use crate::source::{expand_inputs, FileSource, KafkaSource, OffsetTracker};

/// Runs the pipeline over JSON-lines files, then closes every window (end of input).
/// Writes `alerts.jsonl`, `suggestions.jsonl`, `deadletter.jsonl` and `late.jsonl` into
/// `output`, or alerts and suggestions to stdout when `output` is `None`.
pub async fn run_files(
    dir: &Path,
    config: &PipelineConfig,
    inputs: &[PathBuf],
    output: Option<&Path>,
) -> Result<Stats> {
    let mut pipeline = Pipeline::load(dir, config).await?;
    let files = expand_inputs(inputs)?;
    let mut sink: Box<dyn Sink> = match output {
        Some(dir) => Box::new(FileSink::create(dir)?),
        None => Box::new(StdoutSink::new()),
    };
    let mut ack: AckId = 0;
    for file in &files {
        let mut source = FileSource::open(file, config.decode.max_message_bytes)?;
        while let Some(msg) = source.next_message()? {
            ack += 1;
            let em = pipeline.ingest(&msg, ack).await;
            write_all(sink.as_mut(), em)?;
        }
    }
    let em = pipeline.finish().await;
    write_all(sink.as_mut(), em)?;
    sink.flush()?;
    let stats = pipeline.stats().clone();
    info!(
        files = files.len(),
        messages = stats.messages,
        records = stats.records,
        dead_letters = stats.dead_letters,
        late = stats.late,
        windows = stats.windows,
        alerts = stats.alerts,
        "Finished reading input."
    );
    Ok(stats)
}

fn write_all(sink: &mut dyn Sink, em: Emission) -> Result<()> {
    for out in &em.outputs {
        // File and stdout deliveries complete on write.
        drop(sink.send(out)?);
    }
    Ok(())
}

/// Deliveries of one emission and the input messages they release.
async fn deliver(deliveries: Vec<Delivery>, released: Vec<AckId>) -> Result<Vec<AckId>> {
    for d in deliveries {
        d.await?;
    }
    Ok(released)
}

fn wall_clock() -> EventTime {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    EventTime(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// Runs as a member of consumer group `group` until `shutdown` resolves, then waits for
/// pending deliveries, commits and returns. Offsets are committed only for messages whose
/// outputs are all acknowledged; records still in open windows are re-read after a restart.
pub async fn run_kafka(
    dir: &Path,
    config: &PipelineConfig,
    brokers: &str,
    group: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats> {
    let mut pipeline = Pipeline::load(dir, config).await?;
    let source = KafkaSource::new(brokers, group, &config.kafka)?;
    let mut sink = KafkaSink::new(brokers, &config.kafka)?;
    match source.missing_topics(Duration::from_secs(10)) {
        Ok(missing) if !missing.is_empty() => {
            warn!(
                ?missing,
                "Input topics do not exist yet; waiting for them to be created."
            )
        }
        Ok(_) => {}
        Err(error) => warn!(%error, "Could not read cluster metadata; continuing."),
    }
    info!(brokers, group, rules = pipeline.rule_count(), "Consuming.");
    let mut tracker = OffsetTracker::default();
    let mut in_flight = FuturesUnordered::new();
    let mut last_input = Instant::now();
    let idle = config.window.idle_timeout;
    let mut tick =
        tokio::time::interval(Duration::from_millis(200).min(idle.max(Duration::from_millis(10))));
    let mut last_commit = Instant::now();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            done = in_flight.next(), if !in_flight.is_empty() => {
                let released: Vec<AckId> = done.expect("non-empty")?;
                for ack in released {
                    tracker.done(ack);
                }
            }
            msg = source.recv() => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(error) => {
                        warn!(%error, "Kafka consumer error; retrying.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                last_input = Instant::now();
                let crate::model::Location::Kafka { topic, partition, offset } = &msg.source else {
                    unreachable!("kafka source yields kafka locations")
                };
                let ack = tracker.register(topic, *partition, *offset);
                let em = pipeline.ingest(&msg, ack).await;
                in_flight.push(dispatch(&mut sink, em)?);
            }
            _ = tick.tick() => {
                if last_input.elapsed() >= idle {
                    // Quiet inputs: let event time catch up with the wall clock so open
                    // windows close (replays of old data close at once).
                    let wm = wall_clock().saturating_sub(config.window.max_out_of_orderness);
                    if wm > pipeline.watermark() {
                        let em = pipeline.advance_watermark(wm).await;
                        in_flight.push(dispatch(&mut sink, em)?);
                    }
                }
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    let offsets = tracker.committable();
                    if !offsets.is_empty() {
                        source.commit(&offsets, CommitMode::Async)?;
                        tracker.mark_committed(&offsets);
                    }
                    last_commit = Instant::now();
                }
            }
        }
    }

    info!("Shutting down: waiting for deliveries, then committing.");
    sink.flush()?;
    while let Some(done) = in_flight.next().await {
        for ack in done? {
            tracker.done(ack);
        }
    }
    let offsets = tracker.committable();
    source.commit(&offsets, CommitMode::Sync)?;
    tracker.mark_committed(&offsets);
    let stats = pipeline.stats().clone();
    info!(
        messages = stats.messages,
        dead_letters = stats.dead_letters,
        late = stats.late,
        alerts = stats.alerts,
        uncommitted = tracker.in_flight(),
        "Stopped."
    );
    Ok(stats)
}

fn dispatch(
    sink: &mut KafkaSink,
    em: Emission,
) -> Result<impl Future<Output = Result<Vec<AckId>>>> {
    let deliveries = em
        .outputs
        .iter()
        .map(|o| sink.send(o))
        .collect::<Result<Vec<_>>>()?;
    Ok(deliver(deliveries, em.released))
}
