//! Output for a person at a terminal: one compact line per alert notification (time, status,
//! severity, alertname, labels, summary; resends marked), the best suggestion under a firing
//! alert, and a summary table at the end. Read from the same JSON records the machine output
//! carries, so `run --format human` and `faultline alerts` print alike.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::output::{Output, OutputKind};
use crate::pipeline::Stats;
use crate::sink::{Delivery, Sink};

/// How `run` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON lines, one record per line (alerts, then the suggestions for a firing one).
    Json,
    /// A line per notification and a summary table, for a person.
    Human,
}

/// Labels every alert has, shown in their own columns rather than among the labels.
const OWN_COLUMNS: [&str; 2] = ["alertname", "severity"];

/// Renders notifications; remembers which it has seen, to mark resends.
#[derive(Debug, Default)]
pub struct Renderer {
    color: bool,
    /// Ids of the notifications already shown: the same id again is a resend.
    seen: BTreeSet<String>,
}

impl Renderer {
    pub fn new(color: bool) -> Self {
        Renderer {
            color,
            seen: BTreeSet::new(),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        match self.color {
            true => format!("{style}{text}{style:#}"),
            false => text.to_string(),
        }
    }

    /// One line for an alert notification (`schemas/alert.json`), and whether it was a resend.
    pub fn alert(&mut self, alert: &Value) -> (String, bool) {
        let text = |k: &str| alert[k].as_str().unwrap_or("");
        let label = |k: &str| alert["labels"][k].as_str().unwrap_or("");
        let resolved = text("status") == "resolved";
        let resend = !self.seen.insert(text("id").to_string());
        let time = if resolved {
            text("endsAt")
        } else {
            text("startsAt")
        };
        let status = match (resolved, resend) {
            (true, _) => self.paint(green(), "RESOLVED"),
            (false, false) => self.paint(red().bold(), "FIRING  "),
            (false, true) => self.paint(dim(), "resent  "),
        };
        let severity = label("severity");
        let severity_style = match severity {
            "critical" => red(),
            "warning" => yellow(),
            _ => blue(),
        };
        let labels: Vec<String> = alert["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !OWN_COLUMNS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
        let line = format!(
            "{} {status} {} {} {}  {}",
            short_time(time),
            self.paint(severity_style, &format!("{severity:<8}")),
            self.paint(Style::new().bold(), label("alertname")),
            self.paint(dim(), &labels.join(" ")),
            summary
        );
        (line.trim_end().to_string(), resend)
    }

    /// The line under a firing alert for its best suggestion (`schemas/suggestion.json`);
    /// `None` for the others.
    pub fn suggestion(&self, s: &Value) -> Option<String> {
        if s["rank"].as_u64() != Some(1) {
            return None;
        }
        let confidence = s["confidence"].as_f64().unwrap_or(0.0);
        let title = s["title"].as_str().unwrap_or("");
        let review = match s["needs_review"].as_bool() {
            Some(true) => " (needs review)",
            _ => "",
        };
        let alertname = s["alertname"].as_str().unwrap_or("");
        Some(format!(
            "    {} {title}{review} [{confidence:.2}]",
            self.paint(dim(), &format!("suggestion for {alertname}:"))
        ))
    }
}

fn red() -> Style {
    Style::new().fg_color(Some(AnsiColor::Red.into()))
}
fn green() -> Style {
    Style::new().fg_color(Some(AnsiColor::Green.into()))
}
fn yellow() -> Style {
    Style::new().fg_color(Some(AnsiColor::Yellow.into()))
}
fn blue() -> Style {
    Style::new().fg_color(Some(AnsiColor::Blue.into()))
}
fn dim() -> Style {
    Style::new().dimmed()
}

/// `2026-11-01T12:13:00Z` as `2026-11-01 12:13:00`.
fn short_time(rfc3339: &str) -> String {
    rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
}

/// Notifications per rule, for the summary table.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// rule id → (alertname, fired, resent, resolved).
    pub rules: BTreeMap<String, (String, u64, u64, u64)>,
    pub incidents: u64,
    pub dead_letters: u64,
    pub late: u64,
}

impl Tally {
    /// The counts of the notifications in an `alerts.jsonl` (a run with `--output`).
    pub fn of_file(path: &std::path::Path) -> Tally {
        let mut tally = Tally::default();
        let mut renderer = Renderer::new(false);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for alert in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            let (_, resend) = renderer.alert(&alert);
            tally.count(&alert, resend);
        }
        tally
    }

    fn count(&mut self, alert: &Value, resend: bool) {
        let rule = alert["rule_id"].as_str().unwrap_or("?").to_string();
        let name = alert["labels"]["alertname"].as_str().unwrap_or("?");
        let entry = self
            .rules
            .entry(rule)
            .or_insert_with(|| (name.to_string(), 0, 0, 0));
        match (alert["status"].as_str(), resend) {
            (Some("resolved"), _) => entry.3 += 1,
            (_, true) => entry.2 += 1,
            _ => entry.1 += 1,
        }
    }
}

/// A sink that prints notifications for a person on stdout (alert lines, suggestion lines)
/// and counts the rest for the summary.
pub struct HumanSink {
    renderer: Renderer,
    out: Box<dyn Write + Send>,
    tally: Arc<Mutex<Tally>>,
}

impl HumanSink {
    /// The sink and a handle on its counts, read for the summary after the run.
    pub fn new(out: Box<dyn Write + Send>, color: bool) -> (Self, Arc<Mutex<Tally>>) {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let sink = HumanSink {
            renderer: Renderer::new(color),
            out,
            tally: tally.clone(),
        };
        (sink, tally)
    }

    fn line(&mut self, line: &str) -> Result<()> {
        writeln!(self.out, "{line}").map_err(stdout_error)
    }
}

fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        path: "<stdout>".into(),
        source,
    }
}

impl Sink for HumanSink {
    fn send(&mut self, output: &Output) -> Result<Delivery> {
        let value: Value = serde_json::from_str(&output.json).unwrap_or(Value::Null);
        let mut tally = self.tally.lock().expect("tally lock");
        match output.kind {
            OutputKind::Alerts => {
                let (line, resend) = self.renderer.alert(&value);
                tally.count(&value, resend);
                drop(tally);
                self.line(&line)?;
            }
            OutputKind::Suggestions => {
                drop(tally);
                if let Some(line) = self.renderer.suggestion(&value) {
                    self.line(&line)?;
                }
            }
            OutputKind::DeadLetter => tally.dead_letters += 1,
            OutputKind::Late => tally.late += 1,
            OutputKind::Incidents => tally.incidents += 1,
            OutputKind::Review => {}
        }
        Ok(Box::pin(async { Ok(()) }))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(stdout_error)
    }
}

/// The table printed after a run: notifications by rule and state, then what else happened.
pub fn summary(tally: &Tally, stats: &Stats, seconds: f64) -> String {
    let mut out = String::new();
    let width = tally
        .rules
        .iter()
        .map(|(rule, (name, ..))| rule.len().max(name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "\n{:<width$}  {:<width$}  {:>6}  {:>6}  {:>8}\n",
        "rule", "alertname", "fired", "resent", "resolved"
    ));
    for (rule, (name, fired, resent, resolved)) in &tally.rules {
        out.push_str(&format!(
            "{rule:<width$}  {name:<width$}  {fired:>6}  {resent:>6}  {resolved:>8}\n"
        ));
    }
    if tally.rules.is_empty() {
        out.push_str("(no alerts)\n");
    }
    let per_second = match seconds > 0.0 {
        true => stats.records as f64 / seconds,
        false => 0.0,
    };
    out.push_str(&format!(
        "\nrecords {}  messages {}  dead letters {}  late records {}  windows {}  \
         incident records {}  suggestions {}  {:.0} records/s\n",
        stats.records,
        stats.messages,
        stats.dead_letters,
        stats.late,
        stats.windows,
        stats.incidents,
        stats.suggestions,
        per_second
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, status: &str) -> Value {
        serde_json::json!({"id": id, "rule_id": "lat", "status": status,
            "labels": {"alertname": "Lat", "severity": "critical", "service": "api"},
            "annotations": {"summary": "p95 is high"},
            "startsAt": "2026-11-01T12:13:00Z", "endsAt": "2026-11-01T12:15:00Z"})
    }

    #[test]
    fn a_notification_is_one_line_and_a_resend_is_marked() {
        let mut r = Renderer::new(false);
        let (first, resend) = r.alert(&alert("a", "firing"));
        assert!(!resend);
        assert_eq!(
            first,
            "2026-11-01 12:13:00 FIRING   critical Lat service=api  p95 is high"
        );
        let (again, resend) = r.alert(&alert("a", "firing"));
        assert!(resend);
        assert!(again.contains(" resent "), "{again}");
        let (resolved, _) = r.alert(&alert("b", "resolved"));
        assert!(
            resolved.starts_with("2026-11-01 12:15:00 RESOLVED"),
            "{resolved}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let (line, _) = Renderer::new(true).alert(&alert("a", "firing"));
        assert!(line.contains("\u{1b}["), "{line}");
        let (line, _) = Renderer::new(false).alert(&alert("a", "firing"));
        assert!(!line.contains('\u{1b}'), "{line}");
    }

    #[test]
    fn the_tally_counts_by_rule_and_state() {
        let mut t = Tally::default();
        t.count(&alert("a", "firing"), false);
        t.count(&alert("a", "firing"), true);
        t.count(&alert("b", "resolved"), false);
        assert_eq!(t.rules["lat"], ("Lat".to_string(), 1, 1, 1));
    }
}
