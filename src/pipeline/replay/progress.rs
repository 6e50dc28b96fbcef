//! A replay's progress: a bar on a terminal (records/s, event-time position, ETA), a plain
//! line every few seconds otherwise (CI logs, `| tee`). Reads the wall clock: it is the
//! driver's business, never the pipeline's.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::info;

use crate::model::EventTime;

/// How a replay reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar redrawn in place on stderr.
    Bar,
    /// A log line every [`LINE_INTERVAL`].
    Lines,
    /// Nothing (tests).
    Off,
}

const LINE_INTERVAL: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    unit: &'static str,
    started: Instant,
    last_line: Instant,
    records: u64,
}

impl Progress {
    /// `unit` names what `done`/`total` count (`bytes` of files, `offsets` of topics).
    pub fn new(mode: ProgressMode, total: u64, unit: &'static str) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("replay [{bar:32}] {percent:>3}%  {msg}  ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        let now = Instant::now();
        Progress {
            mode,
            bar,
            unit,
            started: now,
            last_line: now,
            records: 0,
        }
    }

    /// After each message: how much of the input is read, records so far, the event time
    /// the pipeline has reached.
    pub fn update(&mut self, done: u64, total: u64, records: u64, position: EventTime) {
        self.records = records;
        let rate = records as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let at = if position == EventTime::MIN {
            "-".to_string()
        } else {
            position.to_rfc3339()
        };
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    bar.set_message(format!("{rate:.0} records/s  event time {at}"));
                }
            }
            ProgressMode::Lines if self.last_line.elapsed() >= LINE_INTERVAL => {
                self.last_line = Instant::now();
                let share = done as f64 / total.max(1) as f64;
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = if share > 0.0 {
                    elapsed * (1.0 - share) / share
                } else {
                    f64::NAN
                };
                info!(
                    percent = format!("{:.1}", share * 100.0),
                    done,
                    total,
                    unit = self.unit,
                    records,
                    records_per_s = format!("{rate:.0}"),
                    event_time = %at,
                    eta_s = format!("{eta:.0}"),
                    "Replay progress."
                );
            }
            _ => {}
        }
    }

    /// Clears the bar; the elapsed time and the records/s of the whole replay.
    pub fn finish(&self) -> (Duration, f64) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let elapsed = self.started.elapsed();
        let rate = self.records as f64 / elapsed.as_secs_f64().max(1e-3);
        (elapsed, rate)
    }
}
