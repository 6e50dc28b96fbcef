//! Building blocks shared by the per-kind matchers: a field builder that keeps each kind's
//! canonical field order, exact byte-size arithmetic and small shape helpers.

use super::{Signature, SignatureKind};

/// Compiles a regex literal once, on first use, and returns a `&'static Regex`.
///
/// The patterns are constants of this crate, so a compile failure is a bug (caught by the
/// corpus tests, which exercise every pattern), never a reaction to input.
macro_rules! regex {
    ($re:literal $(,)?) => {{
        static RE: ::std::sync::LazyLock<::regex::Regex> =
            ::std::sync::LazyLock::new(|| ::regex::Regex::new($re).expect("static regex"));
        &*RE
    }};
}
pub(super) use regex;

/// Collects the fields of one signature and emits them in the kind's canonical order
/// (`SignatureKind::field_names`), so the same failure always serialises the same way.
pub(super) struct Builder {
    kind: SignatureKind,
    fields: Vec<(&'static str, String)>,
}

impl Builder {
    pub(super) fn new(kind: SignatureKind) -> Self {
        Self {
            kind,
            fields: Vec::with_capacity(8),
        }
    }

    /// Sets a field; a later value for the same name replaces the earlier one.
    pub(super) fn set(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let value = value.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    /// Sets a field only when the value is known: missing facts are absent fields.
    pub(super) fn opt<V: Into<String>>(self, name: &'static str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.set(name, v),
            None => self,
        }
    }

    pub(super) fn build(mut self) -> Signature {
        let order = self.kind.field_names();
        debug_assert!(
            self.fields.iter().all(|(n, _)| order.contains(n)),
            "field not declared for {:?}: {:?}",
            self.kind,
            self.fields
        );
        self.fields
            .sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
        Signature {
            kind: self.kind,
            fields: self.fields,
        }
    }
}

/// Converts a printed size (`"4.50"`, `"GiB"`) to bytes with exact decimal arithmetic.
///
/// Units are binary whatever their spelling (`KB`, `KiB` and TensorFlow's `K` are all 1024):
/// PyTorch, TensorFlow and XLA all print binary multiples. The result is rounded half up.
pub(super) fn parse_bytes(number: &str, unit: &str) -> Option<u64> {
    let multiplier: u128 = match unit.trim() {
        "" | "B" | "b" | "byte" | "bytes" => 1,
        "K" | "KB" | "KiB" | "k" | "kB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        "T" | "TB" | "TiB" => 1 << 40,
        "P" | "PB" | "PiB" => 1 << 50,
        _ => return None,
    };
    let (int, frac) = match number.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (number, ""),
    };
    if int.is_empty() || frac.len() > 12 || !is_digits(int) || !is_digits(frac) {
        return None;
    }
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let int: u128 = int.parse().ok()?;
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let mantissa = int.checked_mul(scale)?.checked_add(frac)?;
    let bytes = mantissa.checked_mul(multiplier)?.checked_add(scale / 2)? / scale;
    u64::try_from(bytes).ok()
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// `torch.Size([10, 512])` → `[10, 512]`; anything else is returned trimmed.
pub(super) fn strip_torch_size(shape: &str) -> &str {
    let s = shape.trim();
    s.strip_prefix("torch.Size(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(s)
}

/// The dimension at `axis` (negative counts from the end) of a printed shape such as
/// `(None, 28, 28)` or `[32,10]`.
pub(super) fn dim_at(shape: &str, axis: i64) -> Option<&str> {
    let inner = shape
        .trim()
        .trim_start_matches(['(', '['])
        .trim_end_matches([')', ']']);
    let dims: Vec<&str> = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let len = i64::try_from(dims.len()).ok()?;
    let idx = if axis < 0 { len + axis } else { axis };
    usize::try_from(idx).ok().and_then(|i| dims.get(i).copied())
}

/// Number of elements of a TensorFlow shape such as `1024,1024,256` (empty = scalar).
pub(super) fn numel(dims: &str) -> Option<u64> {
    dims.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(1u64, |acc, d| acc.checked_mul(d.parse().ok()?))
}

/// Size in bytes of one element of a TensorFlow dtype name, when it is fixed.
pub(super) fn tf_dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "bool" | "int8" | "uint8" | "qint8" | "quint8" => 1,
        "half" | "bfloat16" | "float16" | "int16" | "uint16" => 2,
        "float" | "float32" | "int32" | "uint32" => 4,
        "double" | "float64" | "int64" | "uint64" | "complex64" => 8,
        "complex128" => 16,
        _ => return None,
    })
}

/// Strips the `[rank3]:` prefix that torchrun (`--tee`, `--log-line-prefix-template`) puts
/// in front of every line a worker prints, so rank-prefixed tracebacks read like plain ones.
pub(super) fn strip_rank_prefix(line: &str) -> &str {
    let Some(rest) = line.strip_prefix("[rank") else {
        return line;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[digits..].strip_prefix("]:") {
        Some(body) if digits > 0 => body.strip_prefix(' ').unwrap_or(body),
        _ => line,
    }
}
