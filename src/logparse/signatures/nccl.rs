//! `nccl`: collective-communication failures from PyTorch's `ProcessGroupNCCL` and NCCL itself.
//!
//! `error` is always present: a token for PyTorch watchdog events (`watchdog_timeout`,
//! `watchdog_timeout_work`, `watchdog_stuck`, `watchdog_exception`, `communicator_aborted`,
//! `operations_failed`),
//! `nccl_warn` for NCCL's own `NCCL WARN` lines, otherwise NCCL's error string as printed by
//! `ncclGetErrorString` (`unhandled system error`, `remote process exited or there was a
//! network error`, ...), so the same NCCL failure reads the same whichever layer reported it.

use super::fields::{regex, Builder};
use super::{Pattern, Signature, SignatureKind};

pub(super) const FIELDS: &[&str] = &[
    "error",
    "nccl_code",
    "rank",
    "pg",
    "collective",
    "seq",
    "numel_in",
    "numel_out",
    "timeout_ms",
    "elapsed_ms",
    "last_enqueued",
    "last_completed",
    "nccl_version",
    "location",
    "host",
    "pid",
    "tid",
    "cuda_device",
    "message",
    "last_error",
];

pub(super) const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "Watchdog caught collective operation timeout",
        parse: watchdog_timeout,
    },
    Pattern {
        needle: "watchdog got stuck for",
        parse: watchdog_stuck,
    },
    Pattern {
        needle: "detected by watchdog at work",
        parse: watchdog_exception,
    },
    Pattern {
        needle: "Timeout at NCCL work",
        parse: timeout_at_work,
    },
    Pattern {
        needle: "NCCL error",
        parse: nccl_error,
    },
    Pattern {
        needle: "NCCL communicator was aborted",
        parse: communicator_aborted,
    },
    Pattern {
        // With or without NCCL's `host:pid:tid [dev]` prefix (collectors often strip it).
        needle: "NCCL WARN ",
        parse: nccl_warn,
    },
    Pattern {
        needle: "Some NCCL operations have failed or timed out",
        parse: operations_failed,
    },
    Pattern {
        needle: "nccl",
        parse: nccl_code,
    },
];

/// NCCL result codes and the strings `ncclGetErrorString` prints for them.
const NCCL_CODES: &[(&str, &str)] = &[
    ("ncclUnhandledCudaError", "unhandled cuda error"),
    ("ncclSystemError", "unhandled system error"),
    ("ncclInternalError", "internal error"),
    ("ncclInvalidArgument", "invalid argument"),
    ("ncclInvalidUsage", "invalid usage"),
    (
        "ncclRemoteError",
        "remote process exited or there was a network error",
    ),
    ("ncclInProgress", "NCCL operation in progress"),
];

fn base() -> Builder {
    Builder::new(SignatureKind::Nccl)
}

/// The reporting rank: `[Rank 3]`, `[PG 0 Rank 2]`, `[PG ID 0 PG GUID 0(default_pg) Rank 1]`,
/// or torchrun's `[rank3]:` line prefix.
fn rank_and_pg(text: &str, b: Builder) -> Builder {
    let tag = regex!(r"\[(?:PG (?:ID )?(\d+)[^\]\n]*? )?Rank (\d+)\]");
    if let Some(c) = tag.captures(text) {
        return b.set("rank", &c[2]).opt("pg", c.get(1).map(|m| m.as_str()));
    }
    let prefix = regex!(r"\[rank(\d+)\]:");
    b.opt("rank", prefix.captures(text).map(|c| c[1].to_string()))
}

fn watchdog_timeout(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Watchdog caught collective operation timeout: WorkNCCL\(SeqNum=(\d+), OpType=(\w+)(?:, NumelIn=(\d+), NumelOut=(\d+))?, Timeout\(ms\)=(\d+)\) ran for (\d+) milliseconds before timing out"
    )
    .captures(text)?;
    let b = rank_and_pg(text, base().set("error", "watchdog_timeout"))
        .set("collective", &c[2])
        .set("seq", &c[1])
        .opt("numel_in", c.get(3).map(|m| m.as_str()))
        .opt("numel_out", c.get(4).map(|m| m.as_str()))
        .set("timeout_ms", &c[5])
        .set("elapsed_ms", &c[6]);
    Some(b.build())
}

fn watchdog_stuck(text: &str) -> Option<Signature> {
    let c = regex!(r"ProcessGroupNCCL's watchdog got stuck for (\d+) seconds").captures(text)?;
    let ms = c[1].parse::<u64>().ok()?.checked_mul(1000)?;
    let b =
        rank_and_pg(text, base().set("error", "watchdog_stuck")).set("elapsed_ms", ms.to_string());
    Some(b.build())
}

fn watchdog_exception(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Exception \(either an error or timeout\) detected by watchdog at work: (\d+), last enqueued NCCL work: (-?\d+), last completed NCCL work: (-?\d+)"
    )
    .captures(text)?;
    Some(work_progress(text, "watchdog_exception", &c))
}

/// PyTorch 2.x's follow-up to a watchdog timeout: `[Rank 1] Timeout at NCCL work: 111, last
/// enqueued NCCL work: 111, last completed NCCL work: 110.`
fn timeout_at_work(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Timeout at NCCL work: (\d+), last enqueued NCCL work: (-?\d+), last completed NCCL work: (-?\d+)"
    )
    .captures(text)?;
    Some(work_progress(text, "watchdog_timeout_work", &c))
}

/// A watchdog line naming the failed work and the last enqueued and completed ones.
fn work_progress(text: &str, error: &str, c: &regex::Captures<'_>) -> Signature {
    rank_and_pg(text, base().set("error", error))
        .set("seq", &c[1])
        .set("last_enqueued", &c[2])
        .set("last_completed", &c[3])
        .build()
}

/// `NCCL error in: <file>:<line>, <error string>[ (run with NCCL_DEBUG=INFO for details)],
/// NCCL version <v>`, optionally followed by `ncclXxxError: <detail>` and `Last error:\n<why>`.
fn nccl_error(text: &str) -> Option<Signature> {
    let c = regex!(
        r"NCCL error(?: in: ([^\s,]+:\d+))?[,:] ([^\n]+?)(?: \(run with NCCL_DEBUG=INFO for details\))?, NCCL version ([0-9][\w.+]*)"
    )
    .captures(text)?;
    let error = c[2]
        .trim()
        .trim_end_matches(" - please report this issue to the NCCL developers");
    let b = rank_and_pg(text, base().set("error", error))
        .opt("nccl_code", code_in(text).map(|(code, _)| code))
        .set("nccl_version", c[3].trim_end_matches('.'))
        .opt("location", c.get(1).map(|m| m.as_str()))
        .opt("last_error", last_error(text));
    Some(b.build())
}

fn communicator_aborted(text: &str) -> Option<Signature> {
    let c = regex!(r"NCCL communicator was aborted on rank (\d+)").captures(text)?;
    let b = base()
        .set("error", "communicator_aborted")
        .set("rank", &c[1]);
    Some(b.build())
}

/// NCCL's own log format: `host:pid:tid [cudaDev] [file.cc:line ]NCCL WARN message`.
fn nccl_warn(text: &str) -> Option<Signature> {
    let c = regex!(
        r"(?:([A-Za-z0-9][\w.\-]*):(\d+):(\d+) \[(\d+)\] (?:(\S+:\d+) )?)?NCCL WARN ([^\n]*)"
    )
    .captures(text)?;
    let message = c[6].trim();
    if message.is_empty() {
        return None;
    }
    let b = base()
        .set("error", "nccl_warn")
        .opt("location", c.get(5).map(|m| m.as_str()))
        .opt("host", c.get(1).map(|m| m.as_str()))
        .opt("pid", c.get(2).map(|m| m.as_str()))
        .opt("tid", c.get(3).map(|m| m.as_str()))
        .opt("cuda_device", c.get(4).map(|m| m.as_str()))
        .set("message", message);
    Some(b.build())
}

fn operations_failed(text: &str) -> Option<Signature> {
    Some(rank_and_pg(text, base().set("error", "operations_failed")).build())
}

/// A bare NCCL result code, e.g. `ncclSystemError: System call (e.g. socket, malloc) ...`.
fn nccl_code(text: &str) -> Option<Signature> {
    let (code, error) = code_in(text)?;
    let detail = text
        .split(code)
        .nth(1)
        .and_then(|rest| rest.strip_prefix(": "))
        .and_then(|rest| rest.lines().next())
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let b = rank_and_pg(text, base().set("error", error))
        .set("nccl_code", code)
        .opt("message", detail)
        .opt("last_error", last_error(text));
    Some(b.build())
}

fn code_in(text: &str) -> Option<(&'static str, &'static str)> {
    let found = regex!(
        r"\b(ncclUnhandledCudaError|ncclSystemError|ncclInternalError|ncclInvalidArgument|ncclInvalidUsage|ncclRemoteError|ncclInProgress)\b"
    )
    .find(text)?;
    NCCL_CODES
        .iter()
        .find(|(code, _)| *code == found.as_str())
        .copied()
}

/// The line after `Last error:` (or the rest of that line when a report flattened it).
fn last_error(text: &str) -> Option<&str> {
    let c = regex!(r"Last error:[ \t]*(?:\r?\n)?(?:\[rank\d+\]:[ \t]*)?([^\n]+)").captures(text)?;
    let v = c.get(1)?.as_str().trim();
    (!v.is_empty()).then_some(v)
}
