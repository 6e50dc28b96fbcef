//! The library's error type, classified by who must act: the user (config, rules, input
//! paths), the environment (Kafka, file system), or us (internal bugs).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user must fix `pipeline.toml` or a command-line value.
    #[error("{location}: {message}")]
    Config { location: String, message: String },
    /// The user must fix a rule file.
    #[error("{location}: {message}")]
    Rule { location: String, message: String },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Kafka cluster or client failed; usually the operator must act.
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Kafka is reachable but not set up as the pipeline needs (missing topics and the like).
    #[error("kafka: {0}")]
    KafkaSetup(String),
    /// An agent cannot collect (no NVIDIA driver, a failing device): the operator must act.
    #[error("{0}")]
    Agent(String),
    /// A bug in faultline: a query over our own tables failed in a way rules cannot cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context: context.into(),
            source,
        }
    }
}

/// 1-based line of a TOML error in `text`, or 1 when it has no span: every TOML file a user
/// writes (`pipeline.toml`, rule headers, `_defaults.toml`) reports errors as `file:line`.
pub fn toml_line(text: &str, e: &toml::de::Error) -> usize {
    e.span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(1)
}
