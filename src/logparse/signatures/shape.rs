//! `shape_mismatch`: a tensor shape, channel count or dimension did not fit.
//!
//! `form`, `expected` and `actual` are always present. `expected` is what the model, layer or
//! reference operand wanted; `actual` what it got. For messages about two symmetric operands
//! (`mat1 and mat2`, `tensor a`/`tensor b`, TensorFlow's `X vs. Y`) the left operand, as
//! printed, is `expected` and the right one `actual`. Shapes are kept as printed, except that
//! `torch.Size([..])` is reduced to `[..]` and matmul operands are written `32x512`.
//!
//! Forms: `conv_channels`, `conv_rank`, `matmul`, `state_dict`, `broadcast`, `cat`, `view`,
//! `batch_size`, `target_size` (PyTorch); `incompatible_shapes`, `dimensions`, `layer_input`
//! (TensorFlow/Keras).

use super::fields::{dim_at, regex, strip_torch_size, Builder};
use super::{Pattern, Signature, SignatureKind};

pub(super) const FIELDS: &[&str] = &[
    "form",
    "expected",
    "actual",
    "param",
    "layer",
    "op",
    "dimension",
    "axis",
    "input_index",
    "tensor_index",
    "groups",
    "weight_shape",
    "input_shape",
    "left_shape",
    "right_shape",
    "checkpoint_shape",
    "model_shape",
];

pub(super) const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "shapes cannot be multiplied",
        parse: matmul,
    },
    Pattern {
        needle: "size mismatch, m1:",
        parse: matmul_legacy,
    },
    Pattern {
        needle: "size mismatch for ",
        parse: state_dict,
    },
    Pattern {
        needle: "channels, but got",
        parse: conv_channels,
    },
    Pattern {
        needle: "-dimensional input for ",
        parse: conv_rank,
    },
    Pattern {
        needle: "must match the size of tensor b",
        parse: broadcast,
    },
    Pattern {
        needle: "Sizes of tensors must match",
        parse: cat,
    },
    Pattern {
        needle: "is invalid for input of size",
        parse: view,
    },
    Pattern {
        needle: "to match target batch_size",
        parse: batch_size,
    },
    Pattern {
        needle: "must be the same as input size",
        parse: target_size,
    },
    Pattern {
        needle: "Incompatible shapes",
        parse: incompatible_shapes,
    },
    Pattern {
        needle: "are incompatible",
        parse: shapes_incompatible,
    },
    Pattern {
        needle: "Dimensions must be equal",
        parse: dimensions,
    },
    Pattern {
        needle: "is incompatible with the layer",
        parse: layer_input,
    },
];

fn base(form: &str, expected: &str, actual: &str) -> Builder {
    Builder::new(SignatureKind::ShapeMismatch)
        .set("form", form)
        .set("expected", expected)
        .set("actual", actual)
}

/// `mat1 and mat2 shapes cannot be multiplied (32x512 and 256x10)`; the inner dimensions
/// disagree, so `expected` is mat1's columns and `actual` mat2's rows.
fn matmul(text: &str) -> Option<Signature> {
    let c = regex!(
        r"(?:mat1 and mat2|m1 and m2) shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)"
    )
    .captures(text)?;
    let b = base("matmul", &c[2], &c[3])
        .set("left_shape", format!("{}x{}", &c[1], &c[2]))
        .set("right_shape", format!("{}x{}", &c[3], &c[4]));
    Some(b.build())
}

/// PyTorch < 1.8: `size mismatch, m1: [32 x 512], m2: [256 x 10] at ...`.
fn matmul_legacy(text: &str) -> Option<Signature> {
    let c =
        regex!(r"size mismatch, m1: \[(\d+) x (\d+)\], m2: \[(\d+) x (\d+)\]").captures(text)?;
    let b = base("matmul", &c[2], &c[3])
        .set("left_shape", format!("{}x{}", &c[1], &c[2]))
        .set("right_shape", format!("{}x{}", &c[3], &c[4]));
    Some(b.build())
}

/// `size mismatch for fc.weight: copying a param with shape torch.Size([10, 512]) from
/// checkpoint, the shape in current model is torch.Size([100, 512]).` (the first one listed).
fn state_dict(text: &str) -> Option<Signature> {
    let c = regex!(
        r"size mismatch for ([\w.\-]+): copying a param with shape (torch\.Size\(\[[^\]]*\]\)|\[[^\]]*\]) from checkpoint, the shape in current model is (torch\.Size\(\[[^\]]*\]\)|\[[^\]]*\])"
    )
    .captures(text)?;
    let checkpoint = strip_torch_size(&c[2]);
    let model = strip_torch_size(&c[3]);
    let b = base("state_dict", model, checkpoint)
        .set("param", &c[1])
        .set("checkpoint_shape", checkpoint)
        .set("model_shape", model);
    Some(b.build())
}

/// `Given groups=1, weight of size [16, 3, 3, 3], expected input[32, 6, 64, 64] to have 3
/// channels, but got 6 channels instead` (also `Given transposed=1, ...`).
fn conv_channels(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Given (?:groups=(\d+)|transposed=\d+), weight of size (\[[^\]]*\]), expected input(\[[^\]]*\]) to have (\d+) channels, but got (\d+) channels instead"
    )
    .captures(text)?;
    let b = base("conv_channels", &c[4], &c[5])
        .opt("groups", c.get(1).map(|m| m.as_str()))
        .set("weight_shape", &c[2])
        .set("input_shape", &c[3]);
    Some(b.build())
}

/// `Expected 4-dimensional input for 4-dimensional weight [64, 3, 7, 7], but got
/// 3-dimensional input of size [3, 224, 224] instead`.
fn conv_rank(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Expected (\d+)-dimensional input for \d+-dimensional weight (\[[^\]]*\]), but got (\d+)-dimensional input of size (\[[^\]]*\]) instead"
    )
    .captures(text)?;
    let b = base("conv_rank", &c[1], &c[3])
        .set("weight_shape", &c[2])
        .set("input_shape", &c[4]);
    Some(b.build())
}

/// `The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1`.
fn broadcast(text: &str) -> Option<Signature> {
    let c = regex!(
        r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton dimension (-?\d+)"
    )
    .captures(text)?;
    Some(
        base("broadcast", &c[1], &c[2])
            .set("dimension", &c[3])
            .build(),
    )
}

/// `torch.cat`: `Sizes of tensors must match except in dimension 1. Expected size 32 but got
/// size 16 for tensor number 1 in the list.` (or the older `Got 32 and 16 in dimension 0
/// (The offending index is 1)`).
fn cat(text: &str) -> Option<Signature> {
    if let Some(c) = regex!(
        r"Sizes of tensors must match except in dimension -?\d+\. Expected size (\d+) but got size (\d+) for tensor number (\d+) in the list"
    )
    .captures(text)
    {
        return Some(base("cat", &c[1], &c[2]).set("tensor_index", &c[3]).build());
    }
    let c = regex!(
        r"Sizes of tensors must match except in dimension -?\d+\. Got (\d+) and (\d+) in dimension (-?\d+) \(The offending index is (\d+)\)"
    )
    .captures(text)?;
    let b = base("cat", &c[1], &c[2])
        .set("dimension", &c[3])
        .set("tensor_index", &c[4]);
    Some(b.build())
}

/// `shape '[32, 784]' is invalid for input of size 1000`: `actual` is the element count.
fn view(text: &str) -> Option<Signature> {
    let c = regex!(r"shape '(\[[^\]]*\])' is invalid for input of size (\d+)").captures(text)?;
    Some(base("view", &c[1], &c[2]).build())
}

/// `Expected input batch_size (64) to match target batch_size (32).`: the target is the
/// reference, so `expected` is its batch size.
fn batch_size(text: &str) -> Option<Signature> {
    let c = regex!(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)\)")
        .captures(text)?;
    Some(base("batch_size", &c[2], &c[1]).build())
}

/// `Target size (torch.Size([32])) must be the same as input size (torch.Size([32, 1]))`.
fn target_size(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Target size \((torch\.Size\(\[[^\]]*\]\)|\[[^\]]*\])\) must be the same as input size \((torch\.Size\(\[[^\]]*\]\)|\[[^\]]*\])\)"
    )
    .captures(text)?;
    let target = strip_torch_size(&c[1]);
    let input = strip_torch_size(&c[2]);
    Some(base("target_size", input, target).build())
}

/// The TensorFlow op, when the message names it: `[Op:AddV2]` or `{{node mul}} = Mul[...]`
/// (not `[Op:__inference_train_function_123]`, which names a traced function).
fn tf_op(text: &str) -> Option<&str> {
    regex!(r"\[Op:([A-Za-z]\w*)\]|\}\} = (\w+)\[")
        .captures(text)
        .and_then(|c| c.get(1).or(c.get(2)))
        .map(|m| m.as_str())
}

/// TensorFlow: `Incompatible shapes: [32,10] vs. [32,5]`.
fn incompatible_shapes(text: &str) -> Option<Signature> {
    let c = regex!(r"Incompatible shapes: (\[[^\]]*\]) vs\. (\[[^\]]*\])").captures(text)?;
    Some(
        base("incompatible_shapes", &c[1], &c[2])
            .opt("op", tf_op(text))
            .build(),
    )
}

/// Keras: `Shapes (None, 10) and (None, 5) are incompatible`.
fn shapes_incompatible(text: &str) -> Option<Signature> {
    let c = regex!(r"Shapes (\([^)]*\)|\[[^\]]*\]) and (\([^)]*\)|\[[^\]]*\]) are incompatible")
        .captures(text)?;
    Some(base("incompatible_shapes", &c[1], &c[2]).build())
}

/// TensorFlow graph construction: `Dimensions must be equal, but are 10 and 5 for '{{node
/// mul}} = Mul[T=DT_FLOAT](x, y)' with input shapes: [?,10], [?,5].`
fn dimensions(text: &str) -> Option<Signature> {
    let c = regex!(r"Dimensions must be equal, but are (\d+) and (\d+)").captures(text)?;
    let shapes = regex!(r"with input shapes: (\[[^\]]*\]), (\[[^\]]*\])").captures(text);
    let b = base("dimensions", &c[1], &c[2])
        .opt("op", tf_op(text))
        .opt("left_shape", shapes.as_ref().map(|s| s[1].to_string()))
        .opt("right_shape", shapes.as_ref().map(|s| s[2].to_string()));
    Some(b.build())
}

/// Keras input-spec checks: `Input 0 of layer "dense" is incompatible with the layer:` then
/// `expected axis -1 of input shape to have value 784, but received input with shape (None,
/// 28, 28)` (actual = the received dimension at that axis), `expected shape=(None, 28, 28),
/// found shape=(None, 784)`, or `expected ndim=4, found ndim=3. Full shape received: (...)`.
fn layer_input(text: &str) -> Option<Signature> {
    let head = regex!(r#"Input (\d+) of layer "?([^"\s]+?)"? is incompatible with the layer: "#)
        .captures(text)?;
    let rest = &text[head.get(0)?.end()..];
    let with_layer = |b: Builder| b.set("layer", &head[2]).set("input_index", &head[1]);
    if let Some(c) = regex!(
        r"^expected axis (-?\d+) of input shape to have value (\d+),? but received input with shape (\([^)]*\)|\[[^\]]*\])"
    )
    .captures(rest)
    {
        let axis: i64 = c[1].parse().ok()?;
        let actual = dim_at(&c[3], axis).unwrap_or(&c[3]);
        let b = with_layer(base("layer_input", &c[2], actual))
            .set("axis", &c[1])
            .set("input_shape", &c[3]);
        return Some(b.build());
    }
    if let Some(c) =
        regex!(r"^expected shape=(\([^)]*\)|\[[^\]]*\]), found shape=(\([^)]*\)|\[[^\]]*\])")
            .captures(rest)
    {
        return Some(with_layer(base("layer_input", &c[1], &c[2])).build());
    }
    let c = regex!(
        r"^expected (?:min_|max_)?ndim=(\d+), found ndim=(\d+)(?:\. Full shape received: (\([^)]*\)|\[[^\]]*\]))?"
    )
    .captures(rest)?;
    let b = with_layer(base("layer_input", &c[1], &c[2]))
        .opt("input_shape", c.get(3).map(|m| m.as_str()));
    Some(b.build())
}
