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
    /// The user must change the command line (an argument missing or not making sense).
    #[error("{0}")]
    Usage(String),
    /// The input was read but none of it could be used: every message was a dead letter.
    #[error("{0}")]
    BadInput(String),
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

/// How a run ended, as the process's exit status (documented in README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done, nothing wrong.
    Ok = 0,
    /// 1: the user must act: the command line, a pipeline, a rule, an input path or the
    /// input itself (also: `check` found problems, `test` had failures).
    User = 1,
    /// 2: the environment must: Kafka, a disk, a device driver.
    Environment = 2,
    /// 3: we must: a bug in faultline.
    Internal = 3,
}

impl Error {
    /// Who must act, as an exit status. A path that does not exist is the user's to fix (a
    /// typo in `--pipeline` or `--input`); other I/O failures are the environment's.
    pub fn exit_status(&self) -> ExitStatus {
        use std::io::ErrorKind;
        match self {
            Error::Config { .. } | Error::Rule { .. } | Error::Usage(_) | Error::BadInput(_) => {
                ExitStatus::User
            }
            Error::Io { source, .. } => match source.kind() {
                ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
                    ExitStatus::User
                }
                _ => ExitStatus::Environment,
            },
            Error::Kafka { .. } | Error::KafkaSetup(_) | Error::Agent(_) => ExitStatus::Environment,
            Error::Internal(_) => ExitStatus::Internal,
        }
    }

    /// What to try next, when the message alone may not say it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                Some(match path.file_name().and_then(|n| n.to_str()) {
                    Some("pipeline.toml") => {
                        "--pipeline (or `check`) takes a pipeline directory holding \
                         pipeline.toml, e.g. pipelines/inference"
                    }
                    _ => "relative paths are relative to the current directory",
                })
            }
            Error::Kafka { .. } => Some(
                "check --brokers and the [kafka.client] settings; `--log rdkafka=debug` \
                 shows the client's own view",
            ),
            Error::Internal(_) => {
                Some("this is a bug in faultline; please report it with the command and input")
            }
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_says_who_must_act() {
        let io = |kind| Error::Io {
            path: "x".into(),
            source: std::io::Error::from(kind),
        };
        let cases = [
            (Error::Usage("u".into()), ExitStatus::User),
            (Error::BadInput("b".into()), ExitStatus::User),
            (io(std::io::ErrorKind::NotFound), ExitStatus::User),
            (
                io(std::io::ErrorKind::PermissionDenied),
                ExitStatus::Environment,
            ),
            (Error::KafkaSetup("k".into()), ExitStatus::Environment),
            (Error::Agent("a".into()), ExitStatus::Environment),
            (Error::Internal("i".into()), ExitStatus::Internal),
        ];
        for (e, status) in cases {
            assert_eq!(e.exit_status(), status, "{e}");
        }
        assert_eq!(ExitStatus::Internal as u8, 3);
    }
}
