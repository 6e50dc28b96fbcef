//! Drivers: the pipeline on files (the embedded default) and as a Kafka consumer-group
//! member. Only these touch sources and sinks; the wall clock is read here, never in the
//! pure stages.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::consumer::CommitMode;
use tracing::{debug, error, info, warn};

use super::{Emission, Pipeline, Stats};
use crate::align::{AckId, PartitionKey};
use crate::config::PipelineConfig;
use crate::error::Result;
use crate::model::{EventTime, Location};
use crate::sink::{AlertmanagerSink, Delivery, FileSink, KafkaSink, Sink, StdoutSink};
use crate::source::{expand_inputs, FileSource, KafkaSource, OffsetTracker};

/// One input file being read.
struct OpenFile {
    source: FileSource,
    key: PartitionKey,
    /// Newest event time read from it so far.
    newest: EventTime,
}

/// Runs the pipeline over JSON-lines files, then closes every window (end of input).
/// Writes `alerts.jsonl`, `suggestions.jsonl`, `deadletter.jsonl` and `late.jsonl` into
/// `output`, or alerts and suggestions to stdout when `output` is `None`.
///
/// Each file is a partition with its own watermark. Files are read interleaved, always the
/// line of the file that is furthest behind in event time, so a log file and a trace file of
/// the same period line up as they would on Kafka; the order is deterministic.
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
    let mut am = alertmanager(config);
    let mut open = Vec::new();
    for (i, path) in files.iter().enumerate() {
        // All files are one shard (0), each its own partition within it.
        let key = (format!("{}#{i}", path.display()), 0);
        pipeline.register(&key);
        open.push(OpenFile {
            source: FileSource::open(path, config.decode.max_message_bytes)?,
            key,
            newest: EventTime::MIN,
        });
    }
    let mut ack: AckId = 0;
    while let Some(i) = (0..open.len()).min_by_key(|&i| (open[i].newest, i)) {
        let Some(msg) = open[i].source.next_message()? else {
            let done = open.remove(i);
            write_all(sink.as_mut(), pipeline.set_idle(&done.key).await)?;
            continue;
        };
        ack += 1;
        let em = pipeline.ingest_from(&msg, ack, &open[i].key).await;
        open[i].newest = open[i].newest.max(pipeline.newest(&open[i].key));
        forward(&mut am, &em);
        write_all(sink.as_mut(), em)?;
    }
    let em = pipeline.finish().await;
    forward(&mut am, &em);
    write_all(sink.as_mut(), em)?;
    sink.flush()?;
    pipeline.save_templates()?;
    if let Some(am) = &mut am {
        am.drain().await;
    }
    let stats = pipeline.stats();
    info!(
        files = files.len(),
        messages = stats.messages,
        records = stats.records,
        dead_letters = stats.dead_letters,
        late = stats.late,
        windows = stats.windows,
        alerts = stats.alerts,
        traces = stats.align.traces_closed,
        closed_early =
            stats.align.traces_closed_early_open_cap + stats.align.traces_closed_early_row_cap,
        windows_early = stats.align.windows_emitted_early,
        "Finished reading input."
    );
    Ok(stats)
}

fn alertmanager(config: &PipelineConfig) -> Option<AlertmanagerSink> {
    config
        .alertmanager
        .as_ref()
        .map(|a| AlertmanagerSink::new(&a.url, a.timeout))
}

fn forward(am: &mut Option<AlertmanagerSink>, em: &Emission) {
    if let Some(am) = am {
        am.forward(&em.outputs);
    }
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
    let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    let source = KafkaSource::new(brokers, group, &config.kafka, tracker.clone())?;
    let mut sink = KafkaSink::new(brokers, &config.kafka)?;
    let mut am = alertmanager(config);
    match source.check_topics(&config.kafka, Duration::from_secs(10)) {
        Ok(missing) if !missing.is_empty() => {
            warn!(
                ?missing,
                "Input topics do not exist yet; waiting for them to be created."
            )
        }
        Ok(_) => {}
        Err(e @ crate::Error::KafkaSetup(_)) => return Err(e),
        Err(error) => warn!(%error, "Could not read cluster metadata; continuing."),
    }
    info!(brokers, group, rules = pipeline.rule_count(), "Consuming.");
    let mut in_flight = FuturesUnordered::new();
    let mut in_flight_outputs = 0usize;
    let mut paused = false;
    let mut last_input = Instant::now();
    let mut last_seen: HashMap<PartitionKey, Instant> = HashMap::new();
    let idle = config.window.idle_timeout;
    let max_in_flight = config.limits.max_in_flight_outputs.max(1);
    let mut tick =
        tokio::time::interval(Duration::from_millis(100).min(idle.max(Duration::from_millis(10))));
    let mut last_commit = Instant::now();
    let (rules_dir, rule_paths) = {
        let (d, p) = pipeline.rule_paths();
        (d.to_path_buf(), p.to_vec())
    };
    let mut rules_stamp = crate::rules::rules_stamp(&rules_dir, &rule_paths);
    let mut last_rules_check = Instant::now();
    let mut hangup = hangup_signal();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = hangup.recv() => {
                info!("SIGHUP received; reloading rules.");
                reload(&mut pipeline).await;
                rules_stamp = crate::rules::rules_stamp(&rules_dir, &rule_paths);
            }
            done = in_flight.next(), if !in_flight.is_empty() => {
                let (released, outputs): (Vec<AckId>, usize) = done.expect("non-empty")?;
                in_flight_outputs -= outputs;
                let mut t = tracker.lock().expect("tracker lock");
                for ack in released {
                    t.done(ack);
                }
            }
            msg = source.recv(), if !paused => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(error) => {
                        warn!(%error, "Kafka consumer error; retrying.");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                rebalanced(&source, &mut pipeline, &tracker, &mut last_seen);
                last_input = Instant::now();
                let Location::Kafka { topic, partition, offset } = &msg.source else {
                    unreachable!("kafka source yields kafka locations")
                };
                let ack = tracker.lock().expect("tracker lock").register(topic, *partition, *offset);
                last_seen.insert((topic.clone(), *partition), last_input);
                let em = pipeline.ingest(&msg, ack).await;
                in_flight_outputs += em.outputs.len();
                forward(&mut am, &em);
                        in_flight.push(dispatch(&mut sink, em)?);
            }
            _ = tick.tick() => {
                rebalanced(&source, &mut pipeline, &tracker, &mut last_seen);
                // Partitions quiet for the idle timeout stop holding the watermark back.
                let quiet: Vec<PartitionKey> = last_seen
                    .iter()
                    .filter(|(p, at)| at.elapsed() >= idle && !pipeline.is_idle(p))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in quiet {
                    debug!(topic = %p.0, partition = p.1, "Partition idle.");
                    let em = pipeline.set_idle(&p).await;
                    in_flight_outputs += em.outputs.len();
                    forward(&mut am, &em);
                        in_flight.push(dispatch(&mut sink, em)?);
                }
                if last_input.elapsed() >= idle && pipeline.all_idle() {
                    // Every input is quiet: let event time catch up with the wall clock so
                    // open windows close (replays of old data close at once).
                    let wm = wall_clock().saturating_sub(config.window.max_out_of_orderness);
                    if wm > pipeline.watermark() {
                        let em = pipeline.advance_watermark(wm).await;
                        in_flight_outputs += em.outputs.len();
                        forward(&mut am, &em);
                        in_flight.push(dispatch(&mut sink, em)?);
                    }
                }
                if last_rules_check.elapsed() >= Duration::from_secs(2) {
                    last_rules_check = Instant::now();
                    let stamp = crate::rules::rules_stamp(&rules_dir, &rule_paths);
                    if stamp != rules_stamp {
                        info!("Rule files changed; reloading rules.");
                        rules_stamp = stamp;
                        reload(&mut pipeline).await;
                    }
                }
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    let offsets = tracker.lock().expect("tracker lock").committable();
                    if !offsets.is_empty() {
                        source.commit(&offsets, CommitMode::Async)?;
                        tracker.lock().expect("tracker lock").mark_committed(&offsets);
                    }
                    last_commit = Instant::now();
                }
            }
        }
        // Backpressure, after every step: stop fetching while too many outputs await
        // acknowledgement; resume once half of them are acknowledged.
        let want_pause = if paused {
            in_flight_outputs > max_in_flight / 2
        } else {
            in_flight_outputs > max_in_flight
        };
        if want_pause != paused {
            source.set_paused(want_pause)?;
            paused = want_pause;
            info!(paused, in_flight_outputs, "Backpressure.");
        }
    }

    info!("Shutting down: waiting for deliveries, then committing.");
    sink.flush()?;
    if let Some(am) = &mut am {
        am.drain().await;
    }
    while let Some(done) = in_flight.next().await {
        let (released, _) = done?;
        let mut t = tracker.lock().expect("tracker lock");
        for ack in released {
            t.done(ack);
        }
    }
    let offsets = tracker.lock().expect("tracker lock").committable();
    source.commit(&offsets, CommitMode::Sync)?;
    let uncommitted = {
        let mut t = tracker.lock().expect("tracker lock");
        t.mark_committed(&offsets);
        t.in_flight()
    };
    pipeline.save_templates()?;
    let stats = pipeline.stats();
    info!(
        messages = stats.messages,
        dead_letters = stats.dead_letters,
        late = stats.late,
        alerts = stats.alerts,
        uncommitted,
        "Stopped."
    );
    Ok(stats)
}

/// Reloads the rules; a bad rule set is reported and the running one kept.
async fn reload(pipeline: &mut Pipeline) {
    match pipeline.reload_rules().await {
        Ok(n) => info!(rules = n, "Rules reloaded."),
        Err(error) => {
            error!(%error, rules = pipeline.rule_count(), "Rule reload failed; the previous rules keep running.")
        }
    }
}

/// SIGHUP, where there is such a thing.
struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        Hangup(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok())
    }
    #[cfg(not(unix))]
    {
        Hangup()
    }
}

/// Applies assignments and revocations the consumer reported: assigned partitions hold
/// their shard's watermark until they deliver or idle; revoked ones lose their uncommitted
/// state, which the new owner re-reads.
fn rebalanced(
    source: &KafkaSource,
    pipeline: &mut Pipeline,
    tracker: &Arc<Mutex<OffsetTracker>>,
    last_seen: &mut HashMap<PartitionKey, Instant>,
) {
    for p in source.take_revoked() {
        revoke(pipeline, tracker, last_seen, &p);
    }
    for p in source.take_assigned() {
        pipeline.register(&p);
        last_seen.insert(p, Instant::now());
    }
}

/// Drops a revoked partition's uncommitted state; its new owner re-reads those records.
fn revoke(
    pipeline: &mut Pipeline,
    tracker: &Arc<Mutex<OffsetTracker>>,
    last_seen: &mut HashMap<PartitionKey, Instant>,
    p: &PartitionKey,
) {
    let mut t = tracker.lock().expect("tracker lock");
    pipeline.revoke(p, |ack| t.partition_of(ack) == Some((p.0.as_str(), p.1)));
    t.forget(&p.0, p.1);
    last_seen.remove(p);
}

fn dispatch(
    sink: &mut KafkaSink,
    em: Emission,
) -> Result<impl Future<Output = Result<(Vec<AckId>, usize)>>> {
    let outputs = em.outputs.len();
    let deliveries = em
        .outputs
        .iter()
        .map(|o| sink.send(o))
        .collect::<Result<Vec<_>>>()?;
    let released = em.released;
    Ok(async move { Ok((deliver(deliveries, released).await?, outputs)) })
}
