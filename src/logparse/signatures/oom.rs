//! `cuda_oom`: GPU memory exhausted.
//!
//! Forms (`form` field):
//! * `pytorch`: `CUDA out of memory. Tried to allocate 4.50 GiB. GPU 1 has a total capacity of
//!   ... of which ... is free. ... Of the allocated memory X is allocated by PyTorch, and Y is
//!   reserved by PyTorch but unallocated.` (PyTorch ≥ 2.1);
//! * `pytorch_legacy`: `Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity; ...
//!   already allocated; ... free; ... reserved in total by PyTorch)` (older; `cached` before 1.5);
//! * `tensorflow`: `OOM when allocating tensor with shape[...] and type float on .../device:GPU:0
//!   by allocator GPU_0_bfc`, or the BFC allocator's `ran out of memory trying to allocate`
//!   (except its "caller indicates that this is not a failure" warning, which is no failure);
//! * `xla`: `RESOURCE_EXHAUSTED: Out of memory while trying to allocate N bytes.` (JAX);
//! * `cuda_error`: `CUDA error: out of memory`, `cudaErrorMemoryAllocation`,
//!   `CUDA_ERROR_OUT_OF_MEMORY`, `cuda runtime error (2) : out of memory`.
//!
//! Byte fields are integers. `reserved_bytes` is the total the caching allocator holds in both
//! PyTorch formats: the new format prints allocated and reserved-but-unallocated separately, so
//! it is their sum there (and `reserved_unallocated_bytes` is the printed part).
//! `process_bytes`/`pid` come from the first process listed. For TensorFlow's tensor OOM,
//! `requested_bytes` is derived from shape × element size when the dtype has a fixed size.

use super::fields::{numel, parse_bytes, regex, tf_dtype_size, Builder};
use super::{Pattern, Signature, SignatureKind};

pub(super) const FIELDS: &[&str] = &[
    "form",
    "device",
    "requested_bytes",
    "capacity_bytes",
    "free_bytes",
    "allocated_bytes",
    "reserved_bytes",
    "reserved_unallocated_bytes",
    "process_bytes",
    "pid",
    "shape",
    "dtype",
    "allocator",
    "cuda_error",
];

pub(super) const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "CUDA out of memory.",
        parse: pytorch,
    },
    Pattern {
        needle: "OOM when allocating tensor",
        parse: tf_tensor,
    },
    Pattern {
        needle: "ran out of memory trying to allocate",
        parse: tf_allocator,
    },
    Pattern {
        needle: "Out of memory while trying to allocate",
        parse: xla,
    },
    Pattern {
        needle: "CUDA_ERROR_OUT_OF_MEMORY",
        parse: cuda_error,
    },
    Pattern {
        needle: "CUDA error: out of memory",
        parse: cuda_error,
    },
    Pattern {
        needle: "cudaErrorMemoryAllocation",
        parse: cuda_error,
    },
    Pattern {
        needle: "cuda runtime error (2) : out of memory",
        parse: cuda_error,
    },
];

/// Bytes from the printed size in capture groups `number` (e.g. `4.50`, `0`, `3.00`) and
/// `number + 1` (its unit: `GiB`, `bytes`, ...). Every size regex spells the pair out as
/// `(\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B)`.
fn size(caps: &regex::Captures<'_>, number: usize) -> Option<u64> {
    parse_bytes(caps.get(number)?.as_str(), caps.get(number + 1)?.as_str())
}

fn bytes_str(b: Option<u64>) -> Option<String> {
    b.map(|v| v.to_string())
}

fn pytorch(text: &str) -> Option<Signature> {
    let requested = regex!(r"Tried to allocate (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B)")
        .captures(text)
        .and_then(|c| size(&c, 1));
    if let Some(c) = regex!(
        r"GPU (\d+) has a total capac(?:i)?ty of (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) of which (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) is free"
    )
    .captures(text)
    {
        let allocated = regex!(
            r"Of the allocated memory (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) is allocated by PyTorch"
        )
        .captures(text)
        .and_then(|c| size(&c, 1));
        let unallocated = regex!(
            r"(\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) is reserved by PyTorch but unallocated"
        )
        .captures(text)
        .and_then(|c| size(&c, 1));
        let reserved = allocated.zip(unallocated).and_then(|(a, u)| a.checked_add(u));
        let (pid, process) = process_usage(text);
        let b = Builder::new(SignatureKind::CudaOom)
            .set("form", "pytorch")
            .set("device", &c[1])
            .opt("requested_bytes", bytes_str(requested))
            .opt("capacity_bytes", bytes_str(size(&c, 2)))
            .opt("free_bytes", bytes_str(size(&c, 4)))
            .opt("allocated_bytes", bytes_str(allocated))
            .opt("reserved_bytes", bytes_str(reserved))
            .opt("reserved_unallocated_bytes", bytes_str(unallocated))
            .opt("process_bytes", bytes_str(process))
            .opt("pid", pid);
        return Some(b.build());
    }
    if let Some(c) = regex!(r"\(GPU (\d+); ").captures(text) {
        let one = |re: &regex::Regex| re.captures(text).and_then(|c| size(&c, 1));
        let b = Builder::new(SignatureKind::CudaOom)
            .set("form", "pytorch_legacy")
            .set("device", &c[1])
            .opt("requested_bytes", bytes_str(requested))
            .opt(
                "capacity_bytes",
                bytes_str(one(regex!(
                    r"(\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) total capacity"
                ))),
            )
            .opt(
                "free_bytes",
                bytes_str(one(regex!(r"; (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) free"))),
            )
            .opt(
                "allocated_bytes",
                bytes_str(one(regex!(
                    r"(\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) already allocated"
                ))),
            )
            .opt(
                "reserved_bytes",
                bytes_str(one(regex!(
                    r"(\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) (?:reserved in total by PyTorch|cached)"
                ))),
            );
        return Some(b.build());
    }
    // `CUDA out of memory.` with no figures (e.g. a wrapper re-raising a shortened message).
    let b = Builder::new(SignatureKind::CudaOom)
        .set("form", "pytorch")
        .opt("requested_bytes", bytes_str(requested));
    Some(b.build())
}

/// `Process 2345 has 137.66 GiB memory in use` or `this process has 3.44 GiB memory in use`.
fn process_usage(text: &str) -> (Option<String>, Option<u64>) {
    match regex!(
        r"(?:Process (\d+)|this process) has (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B) memory in use"
    )
    .captures(text)
    {
        Some(c) => (c.get(1).map(|m| m.as_str().to_string()), size(&c, 2)),
        None => (None, None),
    }
}

fn tf_tensor(text: &str) -> Option<Signature> {
    let c = regex!(
        r"OOM when allocating tensor (?:with|of) shape ?\[([\d,\s]*)\] and type (\w+) on (\S+?)(?: by allocator (\w+))?(?:\s|$)"
    )
    .captures(text)?;
    let dims = c[1].trim();
    let dtype = &c[2];
    let requested = numel(dims)
        .zip(tf_dtype_size(dtype))
        .and_then(|(n, s)| n.checked_mul(s));
    let allocator = c.get(4).map(|m| m.as_str());
    let device = regex!(r"device:GPU:(\d+)")
        .captures(&c[3])
        .map(|d| d[1].to_string())
        .or_else(|| allocator.and_then(allocator_device));
    let b = Builder::new(SignatureKind::CudaOom)
        .set("form", "tensorflow")
        .opt("device", device)
        .opt("requested_bytes", bytes_str(requested))
        .set("shape", format!("[{dims}]"))
        .set("dtype", dtype)
        .opt("allocator", allocator);
    Some(b.build())
}

/// `GPU_0_bfc` → `0`.
fn allocator_device(allocator: &str) -> Option<String> {
    regex!(r"^GPU_(\d+)_")
        .captures(allocator)
        .map(|c| c[1].to_string())
}

fn tf_allocator(text: &str) -> Option<Signature> {
    if text.contains("caller indicates that this is not a failure") {
        return None;
    }
    let c = regex!(
        r"Allocator \((\w+)\) ran out of memory trying to allocate (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B)(?: \(rounded to (\d+)\))?"
    )
    .captures(text)?;
    let requested = match c.get(4) {
        Some(exact) => exact.as_str().parse().ok(),
        None => size(&c, 2),
    };
    let b = Builder::new(SignatureKind::CudaOom)
        .set("form", "tensorflow")
        .opt("device", allocator_device(&c[1]))
        .opt("requested_bytes", bytes_str(requested))
        .set("allocator", &c[1]);
    Some(b.build())
}

fn xla(text: &str) -> Option<Signature> {
    let c = regex!(r"Out of memory while trying to allocate (\d+(?:\.\d+)?) ?(bytes|[KMGTP]i?B)")
        .captures(text)?;
    let b = Builder::new(SignatureKind::CudaOom)
        .set("form", "xla")
        .opt("requested_bytes", bytes_str(size(&c, 1)));
    Some(b.build())
}

fn cuda_error(text: &str) -> Option<Signature> {
    let code = regex!(
        r"\b(cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY)\b|CUDA error: out of memory|cuda runtime error \(2\) : out of memory"
    )
    .captures(text)?;
    // The enum as printed (runtime `cudaErrorMemoryAllocation` or driver
    // `CUDA_ERROR_OUT_OF_MEMORY`); the message-only spellings are the runtime error (code 2).
    let cuda_error = code
        .get(1)
        .map_or("cudaErrorMemoryAllocation", |m| m.as_str());
    // TensorFlow's stream executor: `failed to allocate 2.00G (2147483648 bytes) from device`.
    let requested = regex!(r"failed to allocate \S+ \((\d+) bytes\)")
        .captures(text)
        .and_then(|c| c[1].parse::<u64>().ok());
    let device = regex!(r"\bGPU[ :_](\d+)\b|\bcuda:(\d+)\b")
        .captures(text)
        .and_then(|c| c.get(1).or(c.get(2)))
        .map(|m| m.as_str());
    let b = Builder::new(SignatureKind::CudaOom)
        .set("form", "cuda_error")
        .opt("device", device)
        .opt("requested_bytes", bytes_str(requested))
        .set("cuda_error", cuda_error);
    Some(b.build())
}
