//! The loader: the one place that reads a pipeline directory — `pipeline.toml`, the rules
//! tree with its `_defaults.toml` files, the template state (and the knowledge base files to
//! come) — and the one validation path. `faultline check` and `faultline run` both call
//! [`check`]: anything `run` would reject, `check` rejects first, with `file:line`.
//!
//! Stages never read files: they get text or parsed values from here. Change detection for
//! hot reload ([`rules_stamp`]) reads file metadata here; *when* to look is the driver's
//! business.

mod kb;
mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::kb::entry::Entry;
use crate::kb::feedback::KbState;
use crate::logparse::{MinerConfig, MinerState, TemplateMiner};
use crate::model::Query;
use crate::rules::{bare_query, parse_rules, plan_query, plan_unbound, Rule, RuleText};

pub use kb::{kb_state_path, read_kb_state, save_kb_state};
pub use tree::{read_rules, rules_stamp, RulesStamp};

/// A pipeline directory, read and validated: everything a run needs besides its input.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dir: PathBuf,
    pub config: PipelineConfig,
    /// Parsed, checked and planned, sorted by path.
    pub rules: Vec<Rule>,
    /// The detectors' source queries, in `config.detectors` order.
    pub sources: Vec<Query>,
    /// The incident indicators' queries, in `config.incidents.indicators` order.
    pub indicators: Vec<Query>,
    /// The template miner, restored from `[logs] template_state` when that file exists.
    pub miner: TemplateMiner,
    /// The knowledge base's entries (`[kb] dir`), preconditions planned.
    pub entries: Vec<Entry>,
    /// Feedback statistics from `[kb] state`, when that file exists.
    pub kb_state: KbState,
}

impl Loaded {
    /// `pipeline.toml` of the directory, for messages.
    pub fn pipeline_toml(&self) -> PathBuf {
        self.dir.join("pipeline.toml")
    }
}

/// Reads and validates the pipeline in `dir`, stopping at nothing: every error is returned,
/// each naming its `file:line`. `Ok` only when the pipeline would run.
pub async fn check(dir: &Path) -> std::result::Result<Loaded, Vec<Error>> {
    check_with(dir, &Overrides::default()).await
}

/// What a replay or a rule test changes in a pipeline directory.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Rule files or directories instead of `pipeline.toml`'s `rules` (relative paths are
    /// relative to the pipeline directory).
    pub rules: Option<Vec<PathBuf>>,
    /// Run without a `pipeline.toml`: every setting at its default, the pipeline named
    /// `test` (rule tests that name only rule files).
    pub default_config: bool,
}

/// [`check`] with `overrides` applied.
pub async fn check_with(
    dir: &Path,
    overrides: &Overrides,
) -> std::result::Result<Loaded, Vec<Error>> {
    let toml = dir.join("pipeline.toml");
    let text = match overrides.default_config {
        true => "name = \"test\"\n".to_string(),
        false => read_text(&toml).map_err(|e| vec![e])?,
    };
    let mut config = PipelineConfig::parse(&text, &toml).map_err(|e| vec![e])?;
    if let Some(rules) = &overrides.rules {
        config.rules = rules.clone();
    }
    let mut errors = Vec::new();
    let sources = detector_sources(&config, &toml, &text, &mut errors);
    let indicators = indicator_queries(&config, &toml, &text, &mut errors);
    let (rules, bare) = validated_rules(dir, &config, &mut errors);
    if rules.is_empty() && config.detectors.is_empty() && errors.is_empty() {
        errors.push(Error::Config {
            location: toml.display().to_string(),
            message: format!(
                "no rules and no detectors: nothing can raise an alert (rules = {:?} holds no \
                 .sql files)",
                config.rules
            ),
        });
    }
    let limits = config.evaluation.limits();
    for query in &bare {
        if let Err(e) = plan_unbound(query, limits).await {
            errors.push(e);
        }
    }
    for query in rules.iter().map(|r| &r.query).chain(&sources) {
        if let Err(e) = plan_query(query, limits, &[]).await {
            errors.push(e);
        }
    }
    // Indicators may also read where training ranks run (`incident::comm`).
    let ranks = [crate::incident::comm::ranks_table()];
    for query in &indicators {
        if let Err(e) = plan_query(query, limits, &ranks).await {
            errors.push(e);
        }
    }
    let entries = kb::read_entries(dir, &config, &mut errors).await;
    let kb_state = read_kb_state(kb_state_path(dir, &config).as_deref())
        .map_err(|e| errors.push(e))
        .ok();
    let miner = load_miner(
        template_state_path(dir, &config).as_deref(),
        config.logs.miner,
    )
    .map_err(|e| errors.push(e))
    .ok();
    match (miner, kb_state) {
        (Some(miner), Some(kb_state)) if errors.is_empty() => Ok(Loaded {
            dir: dir.to_path_buf(),
            config,
            rules,
            sources,
            indicators,
            miner,
            entries,
            kb_state,
        }),
        _ => Err(in_file_order(errors)),
    }
}

/// Errors sorted by file and line (each once), as a person fixes them.
fn in_file_order(errors: Vec<Error>) -> Vec<Error> {
    let mut keyed: Vec<(String, (usize, usize), String, Error)> = errors
        .into_iter()
        .map(|e| {
            let text = e.to_string();
            let location = text.split(": ").next().unwrap_or("");
            let (path, line) = split_location(location);
            (path, line, text, e)
        })
        .collect();
    keyed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut seen = BTreeSet::new();
    keyed
        .into_iter()
        .filter(|(_, _, text, _)| seen.insert(text.clone()))
        .map(|(_, _, _, e)| e)
        .collect()
}

/// `file`, `file:line` or `file:line:column` as the file and (line, column), for sorting.
fn split_location(location: &str) -> (String, (usize, usize)) {
    let mut path = location;
    let mut numbers = Vec::new();
    while let Some((rest, n)) = path.rsplit_once(':') {
        match n.parse::<usize>() {
            Ok(n) if numbers.len() < 2 => {
                numbers.insert(0, n);
                path = rest;
            }
            _ => break,
        }
    }
    let at = |i: usize| numbers.get(i).copied().unwrap_or(0);
    (path.to_string(), (at(0), at(1)))
}

/// [`check`], returning its first error.
pub async fn load(dir: &Path) -> Result<Loaded> {
    load_with(dir, &Overrides::default()).await
}

/// [`check_with`], returning its first error.
pub async fn load_with(dir: &Path, overrides: &Overrides) -> Result<Loaded> {
    check_with(dir, overrides)
        .await
        .map_err(|errors| errors.into_iter().next().expect("an error"))
}

/// Reads, parses, checks and plans the rules again (hot reload): what [`check`] does for
/// rules, first error returned.
pub async fn reload_rules(dir: &Path, config: &PipelineConfig) -> Result<Vec<Rule>> {
    let mut errors = Vec::new();
    let (rules, _) = validated_rules(dir, config, &mut errors);
    for rule in &rules {
        if let Err(e) = plan_query(&rule.query, config.evaluation.limits(), &[]).await {
            errors.push(e);
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(rules),
    }
}

/// The rules of the pipeline, parsed, with the checks that need the pipeline's windows; and
/// the bare queries of the files that did not become rules, still to be checked.
fn validated_rules(
    dir: &Path,
    config: &PipelineConfig,
    errors: &mut Vec<Error>,
) -> (Vec<Rule>, Vec<Query>) {
    let (texts, mut read_errors) = read_rules(dir, &config.rules);
    errors.append(&mut read_errors);
    let (rules, mut parse_errors) = parse_rules(&texts);
    errors.append(&mut parse_errors);
    let rules: Vec<Rule> = rules
        .into_iter()
        .filter(|r| match check_rule_window(r, config, &texts) {
            Ok(()) => true,
            Err(e) => {
                errors.push(e);
                false
            }
        })
        .collect();
    let bare = texts
        .iter()
        .filter(|t| !rules.iter().any(|r| r.query.path == t.path))
        .filter_map(bare_query)
        .collect();
    (rules, bare)
}

/// A rule's `window` must be a whole multiple of the pipeline's tumbling window; the error
/// points at the header line that sets it.
fn check_rule_window(rule: &Rule, config: &PipelineConfig, texts: &[RuleText]) -> Result<()> {
    let size = config.window.size;
    let Some(w) = rule.query.window else {
        return Ok(());
    };
    if config.window.slide() != size || w.as_nanos() % size.as_nanos() != 0 {
        let line = texts
            .iter()
            .find(|t| t.path == rule.query.path)
            .and_then(|t| {
                t.text.lines().position(|l| {
                    let l = l.trim_start_matches(['-', ' ']);
                    l.starts_with("window ") || l.starts_with("window=")
                })
            })
            .map_or(1, |i| i + 1);
        return Err(crate::rules::rule_error(
            &rule.query.path,
            line,
            format!(
                "window {} must be a whole multiple of the pipeline's tumbling window.size ({})",
                humantime::format_duration(w),
                humantime::format_duration(size)
            ),
        ));
    }
    Ok(())
}

/// Validates the detectors (unique ids, parameters) and returns their source queries, each
/// located at the line of its `[[detectors]]` header.
fn detector_sources(
    config: &PipelineConfig,
    toml: &Path,
    text: &str,
    errors: &mut Vec<Error>,
) -> Vec<Query> {
    let lines = header_lines(text, "[[detectors]]");
    let mut ids = BTreeSet::new();
    let mut sources = Vec::new();
    for (i, d) in config.detectors.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let fail = |message: String| Error::Config {
            location: format!("{}:{line}", toml.display()),
            message,
        };
        if let Err(m) = d.validate() {
            errors.push(fail(m));
        }
        if !ids.insert(&d.id) {
            errors.push(fail(format!("detector id {:?} is used twice", d.id)));
        }
        sources.push(d.source(toml, line));
    }
    sources
}

/// Validates `[incidents]` and its indicators (unique ids, scales) and returns their
/// queries, each located at the line of its `[[incidents.indicators]]` header.
fn indicator_queries(
    config: &PipelineConfig,
    toml: &Path,
    text: &str,
    errors: &mut Vec<Error>,
) -> Vec<Query> {
    let lines = header_lines(text, "[[incidents.indicators]]");
    let fail = |line: usize, message: String| Error::Config {
        location: format!("{}:{line}", toml.display()),
        message,
    };
    if let Err(m) = config.incidents.validate() {
        let line = header_lines(text, "[incidents]")
            .first()
            .copied()
            .unwrap_or(1);
        errors.push(fail(line, m));
    }
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for (i, ind) in config.incidents.indicators.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        if let Err(m) = ind.validate() {
            errors.push(fail(line, m));
        }
        if !ids.insert(&ind.id) {
            errors.push(fail(
                line,
                format!("indicator id {:?} is used twice", ind.id),
            ));
        }
        let size = config.window.size;
        if let Some(w) = ind.window {
            if config.window.slide() != size || w.as_nanos() % size.as_nanos() != 0 {
                let message = format!(
                    "indicator {:?}: window {} must be a whole multiple of the pipeline's \
                     tumbling window.size ({})",
                    ind.id,
                    humantime::format_duration(w),
                    humantime::format_duration(size)
                );
                errors.push(fail(line, message));
            }
        }
        queries.push(ind.query(toml, line));
    }
    queries
}

/// 1-based lines where an array-of-tables header such as `[[detectors]]` starts.
fn header_lines(text: &str, header: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == header)
        .map(|(i, _)| i + 1)
        .collect()
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where `[logs] template_state` points, if set.
pub fn template_state_path(dir: &Path, config: &PipelineConfig) -> Option<PathBuf> {
    config.logs.template_state.as_ref().map(|p| dir.join(p))
}

/// A miner from the state file at `path` when it exists, else a fresh one. A file that is not
/// a state file is a configuration error naming it (never silently ignored: that would
/// change every template id).
pub fn load_miner(path: Option<&Path>, config: MinerConfig) -> Result<TemplateMiner> {
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(TemplateMiner::new(config));
    };
    let config_error = |message: String| Error::Config {
        location: path.display().to_string(),
        message,
    };
    let text = read_text(path)?;
    let state: MinerState = serde_json::from_str(&text).map_err(|e| {
        config_error(format!(
            "not a template state file ({e}); delete it to start afresh"
        ))
    })?;
    let miner = TemplateMiner::from_state(config, &state).map_err(config_error)?;
    if miner.shapes() > 0 {
        info!(path = %path.display(), shapes = miner.shapes(), "Restored log templates.");
    }
    Ok(miner)
}

/// Writes what a run learned and must keep across restarts: the template miner's state
/// (`[logs] template_state`) and the knowledge base's feedback statistics (`[kb] state`),
/// each only when configured.
pub fn save_states(
    dir: &Path,
    config: &PipelineConfig,
    miner: &MinerState,
    kb: &KbState,
) -> Result<()> {
    if let Some(path) = template_state_path(dir, config) {
        save_state(&path, miner)?;
    }
    if let Some(path) = kb_state_path(dir, config) {
        save_kb_state(&path, kb)?;
    }
    Ok(())
}

/// Writes miner state atomically: a crash leaves the previous state, never half of one.
pub fn save_state(path: &Path, state: &MinerState) -> Result<()> {
    let text = serde_json::to_string(state).expect("state serialises");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests;
