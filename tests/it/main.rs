//! The one integration-test binary (every test binary links DataFusion and librdkafka, so
//! there is only one). Modules:
//! - `agents`: `agent env` with a planted secret through the default pipeline.
//! - `architecture`: module layers, pure stages, file and function sizes (reads `src/`).
//! - `alerting`: an incident on the broker, grouped and inhibited; hot reload of rules.
//! - `alertmanager`: forwarding to a real Alertmanager (`scripts/alertmanager`).
//! - `cli`: the command line, its help and its errors; `usage`: the first hour of a new
//!   user: `--help` snapshots (`tests/cli/`), every bad input said once with a hint and its
//!   exit status, gzip/stdin/directory inputs, human output, `faultline alerts`,
//!   completions, man page, `--version`.
//! - `deploy`: the Dockerfile passes hadolint; docker-compose.yml validates against the
//!   Compose Specification's schema.
//! - `rules`: the shipped rules' data tests (`pipelines/*/tests/*/`).
//! - `templates`: `faultline templates` (output per line, state across restarts) and log
//!   cleaning in the pipeline: template state across restarts, structured-body fields, a
//!   line-by-line traceback from the broker folded into one `cuda_oom` alert.
//! - `invalid`: invalid pipelines as data (`tests/invalid/*/expected.txt`): `check` and
//!   `run` reject them with the same `file:line` errors.
//! - `kb`: the knowledge base: its targets on the independent evaluation set, feedback
//!   from a file and from the broker's feedback topic (ranking, restart, rebuild).
//! - `training`: the training fault-injection suite (`tests/training/`): the culprit rank is
//!   the top suspect of the incident a fault opens; healthy and finished jobs open none.
//! - `readme`: the README's examples run (commands, transcripts, TOML and SQL snippets,
//!   alertnames, the rule-header table), so none can rot.
//! - `files`: the pipeline on files: the example incident (golden), bad input, late records.
//! - `replay`: `faultline replay` on the broker (live vs replay, sandboxing) and on files
//!   (`--rules --diff`, the progress bar on a terminal); `ruletest`: `faultline test` on the
//!   shipped rule tests, a test of the tester, JUnit validated against its XSD.
//! - `secure`: TLS with SCRAM credentials from the environment on the broker's SASL_SSL
//!   listener; wrong credentials, untrusted certificates and unreachable brokers.
//! - `lookback`: a rule's look-back over several windows across `kill -9`, saved in the
//!   checkpoint while small, re-read from the input when over `max_history_bytes`.
//! - `exactly_once`: exactly-once outputs (Kafka transactions): a `kill -9` with outputs in
//!   an open transaction; read_committed consumers see every notification once.
//! - `outage`: a 30 s broker outage on a broker of the test's own: no busy loop, `/readyz`
//!   degraded, reconnected, nothing lost.
//! - `kafka`: the pipeline on a real Apache Kafka broker (`scripts/kafka`): formats, dead
//!   letters, commits; `stream`: alignment, idleness, crash and scale-out on the broker;
//!   `broker`: their helpers. These need `FAULTLINE_TEST_BROKERS`, which `scripts/test` sets.

mod agents;
mod alerting;
mod alertmanager;
mod architecture;
mod broker;
mod checkpoint;
mod cli;
mod common;
mod deploy;
mod exactly_once;
mod files;
mod invalid;
mod kafka;
mod kb;
mod lookback;
mod outage;
mod readme;
mod replay;
mod rules;
mod ruletest;
mod secure;
mod stream;
mod templates;
mod training;
mod usage;
