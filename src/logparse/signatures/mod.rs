//! ML failure signatures: typed facts pulled out of the error messages that PyTorch,
//! TensorFlow/Keras, JAX/XLA, CUDA, NCCL and browsers print, so rules can group and alert on
//! "CUDA OOM on GPU 1 asking for 4.5 GiB" instead of on free text.
//!
//! Two parts:
//! * [`extract`] recognises one failure in one log event's text (a line or a folded traceback)
//!   and returns a [`Signature`]: a [`SignatureKind`] and named string fields in a fixed order.
//! * [`TracebackFolder`] joins the lines of a multi-line traceback that arrived as separate
//!   log records back into one event, so [`extract`] sees the whole failure.
//!
//! Pure and deterministic: no I/O, no wall clock (time is the caller's event time), no global
//! state besides regexes compiled once. `extract` runs on every log event, so it first runs a
//! single literal prefilter built from every pattern's required substring: an ordinary line
//! costs one scan and no other regex. The folder's memory is bounded by
//! [`FoldConfig`] (`max_lines` per fold, `max_streams` pending folds); overflow is counted in
//! [`FoldStats`], never silent.
//!
//! Matching is case-sensitive and literal-first: each pattern names a substring that must be
//! present before its regex runs. When several kinds could apply, the order is `nccl`,
//! `cuda_oom`, `shape_mismatch`, `dtype_mismatch`, `browser_error` (an NCCL error whose root
//! cause is `Cuda failure 'out of memory'` is an NCCL failure; its `last_error` says why).

mod browser;
mod dtype;
mod fields;
mod fold;
mod nccl;
mod oom;
mod shape;
mod traceback;

#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde::ser::SerializeMap;

pub use fold::{FoldConfig, FoldStats, Folded, TracebackFolder};
pub use traceback::final_exception;

/// One recognised failure, typed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signature {
    pub kind: SignatureKind,
    /// Extracted fields, snake_case names, in a fixed order per kind
    /// ([`SignatureKind::field_names`]). Serialised as a JSON object in that order.
    #[serde(serialize_with = "fields_as_map")]
    pub fields: Vec<(&'static str, String)>,
}

/// The failure families recognised. Serialised as [`SignatureKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// A tensor shape, channel count or dimension did not fit (PyTorch, TensorFlow, Keras).
    ShapeMismatch,
    /// A tensor had the wrong element type (or, for PyTorch's legacy tensor types, the
    /// wrong device: `Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor)`
    /// is reported here with `device_mismatch=true`, because the message names types).
    DtypeMismatch,
    /// GPU memory exhausted (PyTorch caching allocator, TensorFlow BFC, XLA, raw CUDA).
    CudaOom,
    /// Collective-communication failure: watchdog timeouts, NCCL errors and warnings.
    Nccl,
    /// A front-end error report: uncaught exception, unhandled rejection, failed resource load.
    BrowserError,
}

impl SignatureKind {
    /// Every kind, in matching priority order.
    pub const ALL: [SignatureKind; 5] = [
        SignatureKind::Nccl,
        SignatureKind::CudaOom,
        SignatureKind::ShapeMismatch,
        SignatureKind::DtypeMismatch,
        SignatureKind::BrowserError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::ShapeMismatch => "shape_mismatch",
            SignatureKind::DtypeMismatch => "dtype_mismatch",
            SignatureKind::CudaOom => "cuda_oom",
            SignatureKind::Nccl => "nccl",
            SignatureKind::BrowserError => "browser_error",
        }
    }

    /// Parses [`SignatureKind::as_str`] back.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Every field a signature of this kind may carry, in the order they appear.
    ///
    /// Always present: `shape_mismatch` and `dtype_mismatch`: `form`, `expected`, `actual`;
    /// `cuda_oom`: `form`; `nccl`: `error`; `browser_error`: `form`, `message`.
    /// Byte counts are integers in bytes; everything else is the text as printed.
    pub fn field_names(self) -> &'static [&'static str] {
        match self {
            SignatureKind::ShapeMismatch => shape::FIELDS,
            SignatureKind::DtypeMismatch => dtype::FIELDS,
            SignatureKind::CudaOom => oom::FIELDS,
            SignatureKind::Nccl => nccl::FIELDS,
            SignatureKind::BrowserError => browser::FIELDS,
        }
    }
}

impl std::fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Signature {
    /// The value of field `name`, if extracted.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn fields_as_map<S: serde::Serializer>(
    fields: &[(&'static str, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (name, value) in fields {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

/// One recognisable message form: a literal that must occur, then a parser that runs only
/// when it does. The literals of all patterns form the prefilter of [`extract`].
struct Pattern {
    needle: &'static str,
    parse: fn(&str) -> Option<Signature>,
}

/// All patterns, grouped by kind in priority order ([`SignatureKind::ALL`]).
const PATTERNS: [&[Pattern]; 5] = [
    nccl::PATTERNS,
    oom::PATTERNS,
    shape::PATTERNS,
    dtype::PATTERNS,
    browser::PATTERNS,
];

/// The needles of every pattern, compiled twice: `any` is one literal alternation, which the
/// regex crate runs as a vectorised multi-substring search, so most log lines stop after one
/// scan; `which` (a set, entry `i` = pattern `i` in priority order) then tells, in one more
/// scan, which patterns can apply to a line that passed.
struct Needles {
    any: Regex,
    which: RegexSet,
    patterns: Vec<&'static Pattern>,
}

static NEEDLES: LazyLock<Needles> = LazyLock::new(|| {
    let patterns: Vec<&'static Pattern> = PATTERNS.iter().flat_map(|ps| ps.iter()).collect();
    let escaped: Vec<String> = patterns.iter().map(|p| regex::escape(p.needle)).collect();
    let mut distinct = escaped.clone();
    distinct.sort_unstable();
    distinct.dedup();
    Needles {
        any: Regex::new(&distinct.join("|")).expect("alternation of escaped literals"),
        which: RegexSet::new(&escaped).expect("set of escaped literals"),
        patterns,
    }
});

/// Recognises a failure in one log event's text (possibly multi-line, e.g. a folded traceback).
///
/// For a Python traceback the final exception (see [`final_exception`]) is tried first, so a
/// traceback ending in `torch.OutOfMemoryError: CUDA out of memory. ...` is `cuda_oom` even if
/// its frames mention NCCL; then the whole text is tried.
pub fn extract(text: &str) -> Option<Signature> {
    let needles = &*NEEDLES;
    if !needles.any.is_match(text) {
        return None;
    }
    if let Some(tail) = traceback::final_exception_block(text) {
        if let Some(sig) = match_patterns(tail) {
            return Some(sig);
        }
    }
    match_patterns(text)
}

fn match_patterns(text: &str) -> Option<Signature> {
    let needles = &*NEEDLES;
    let present = needles.which.matches(text);
    present
        .iter()
        .find_map(|i| needles.patterns.get(i).and_then(|p| (p.parse)(text)))
}
