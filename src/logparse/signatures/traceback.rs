//! What the lines of a Python traceback look like: shared by [`final_exception`] and the
//! [`TracebackFolder`](super::TracebackFolder), so both agree on where a traceback ends.
//!
//! Lines are classified after dropping torchrun's `[rankN]:` prefix and a trailing `\r`.
//!
//! The exception message continues on following lines when they are indented (Keras' `in user
//! code:` frames, `load_state_dict`'s tab-indented `size mismatch for ...`, TensorFlow's
//! `[[{{node ...}}]]`) or start with one of the few unindented continuations that frameworks
//! really print ([`CONTINUATION_PREFIXES`]: NCCL's `Last error:`, CUDA's
//! `CUDA kernel errors might be ...`, TensorFlow's `Node: ...`). Any other unindented line
//! ends it: guessing more would swallow the next log line.

use super::fields::strip_rank_prefix;

/// The text a line is classified by: without torchrun's `[rankN]:` prefix or a trailing `\r`.
pub(super) fn body(line: &str) -> &str {
    strip_rank_prefix(line.strip_suffix('\r').unwrap_or(line))
}

pub(super) fn is_blank(body: &str) -> bool {
    body.trim().is_empty()
}

pub(super) fn is_indented(body: &str) -> bool {
    body.starts_with([' ', '\t']) && !is_blank(body)
}

/// `Traceback (most recent call last):`, or Python 3.11's `  + Exception Group Traceback
/// (most recent call last):`.
pub(super) fn is_header(body: &str) -> bool {
    let t = body.trim();
    t == "Traceback (most recent call last):"
        || t == "+ Exception Group Traceback (most recent call last):"
}

/// The lines between chained tracebacks.
pub(super) fn is_chain_marker(body: &str) -> bool {
    matches!(
        body.trim_end(),
        "During handling of the above exception, another exception occurred:"
            | "The above exception was the direct cause of the following exception:"
    )
}

/// The prose JAX prints between its unfiltered and filtered tracebacks, and the `-----` rule.
pub(super) fn is_chain_prose(body: &str) -> bool {
    let t = body.trim();
    t.starts_with("The stack trace below excludes JAX-internal frames")
        || t.starts_with("The preceding is the original exception")
        || t.starts_with("The preceding stack trace is the source of the JAX operation")
        || (t.len() >= 3 && t.bytes().all(|b| b == b'-'))
}

/// Unindented lines that continue an exception message (see the module docs).
const CONTINUATION_PREFIXES: &[&str] = &[
    // NCCL errors raised by ProcessGroupNCCL: `ncclRemoteError: ...`, `Last error:`, reason.
    "Last error:",
    "nccl",
    // c10 CUDA errors.
    "CUDA kernel errors might be asynchronously reported",
    "For debugging consider passing CUDA_LAUNCH_BLOCKING",
    "Compile with `TORCH_USE_CUDA_DSA`",
    "Exception raised from ",
    "frame #",
    // TensorFlow `Graph execution error:` bodies.
    "Detected at node",
    "Node: ",
    "OOM when allocating",
    "Hint: ",
    "Incompatible shapes",
    "Detected unsupported operations",
];

/// Whether an unindented line continues the exception message before it.
pub(super) fn is_continuation(body: &str) -> bool {
    CONTINUATION_PREFIXES.iter().any(|p| body.starts_with(p))
        || body.contains("root error(s) found")
        || body.contains("successful operations.")
        || body.contains("derived errors ignored.")
        || (body.starts_with('(')
            && body[1..].starts_with(|c: char| c.is_ascii_digit())
            && body.contains(") "))
}

/// Whether the line is `Last error:` alone, after which NCCL prints the reason unindented.
pub(super) fn opens_last_error(body: &str) -> bool {
    body.trim_end() == "Last error:"
}

/// Splits an unindented exception line into (type, message): `Name: message`,
/// `module.Name: message` or a bare `Name` (e.g. `KeyboardInterrupt`).
pub(super) fn exception_line(body: &str) -> Option<(&str, &str)> {
    if body.starts_with([' ', '\t']) || is_blank(body) {
        return None;
    }
    let (name, message) = match body.split_once(':') {
        Some((name, rest)) => (name, rest.strip_prefix(' ').unwrap_or(rest)),
        None => (body.trim_end(), ""),
    };
    is_dotted_identifier(name).then_some((name, message))
}

fn is_dotted_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// Lines of `text` with their byte offsets, `\n`-separated.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').scan(0usize, |offset, line| {
        let start = *offset;
        *offset += line.len() + 1;
        Some((start, line))
    })
}

/// Byte offset in the text of `part`, a sub-slice of the line that starts at `line_start`.
fn offset_in(line_start: usize, line: &str, part: &str) -> usize {
    line_start + (part.as_ptr() as usize - line.as_ptr() as usize)
}

/// The final exception of a (folded) Python traceback: its type and its message, which may
/// span several lines (see the module docs). `None` when `text` has no
/// `Traceback (most recent call last):` line followed by an exception line. For chained
/// exceptions this is the last one, e.g. (`torch.OutOfMemoryError`, `CUDA out of memory. ...`).
pub fn final_exception(text: &str) -> Option<(&str, &str)> {
    let (ty, _, message_start, end) = final_exception_span(text)?;
    Some((ty, text.get(message_start..end)?))
}

/// The final exception from its type to the end of its message, for signature matching.
pub(super) fn final_exception_block(text: &str) -> Option<&str> {
    let (_, type_start, _, end) = final_exception_span(text)?;
    text.get(type_start..end)
}

/// The final exception's type, and the byte offsets of its start, of its message and of the
/// end of its message.
fn final_exception_span(text: &str) -> Option<(&str, usize, usize, usize)> {
    if !text.contains("Traceback (most recent call last):") {
        return None;
    }
    let lines: Vec<(usize, &str)> = lines_with_offsets(text).collect();
    let header = lines.iter().rposition(|(_, l)| is_header(body(l)))?;
    let mut i = header + 1;
    while i < lines.len() && (is_indented(body(lines[i].1)) || is_blank(body(lines[i].1))) {
        i += 1;
    }
    let (line_start, line) = *lines.get(i)?;
    let b = body(line);
    let (name, message) = exception_line(b)?;
    let type_start = offset_in(line_start, line, b);
    let message_start = type_start + (b.len() - message.len());
    let mut end = type_start + b.len();
    let mut take_next = opens_last_error(b);
    let mut k = i + 1;
    while k < lines.len() {
        let b = body(lines[k].1);
        if is_blank(b) {
            // A blank line continues the message only if an indented line or a known
            // continuation follows it.
            let next = (k..lines.len()).find(|&j| !is_blank(body(lines[j].1)));
            match next {
                Some(j) if is_indented(body(lines[j].1)) || is_continuation(body(lines[j].1)) => {
                    k = j;
                    continue;
                }
                _ => break,
            }
        }
        if !(take_next || is_indented(b) || is_continuation(b)) {
            break;
        }
        take_next = opens_last_error(b);
        end = offset_in(lines[k].0, lines[k].1, b) + b.len();
        k += 1;
    }
    Some((name, type_start, message_start.min(end), end))
}
