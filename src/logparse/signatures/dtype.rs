//! `dtype_mismatch`: a tensor had the wrong element type.
//!
//! `form`, `expected` and `actual` are always present; type names are kept as printed except
//! that the `c10::` namespace is dropped (`c10::Half` → `Half`). For two symmetric operands
//! (`m1`/`mat1` vs `m2`/`mat2`, two vectors) the first is `expected`.
//!
//! PyTorch's `Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor) should be
//! the same` names legacy tensor *types*, which encode the device as well as the dtype; most
//! often it means the model and the batch are on different devices. It is reported here
//! (`form=input_weight`, `expected` = the weight's type, `actual` = the input's) with
//! `device_mismatch=true|false` telling the two causes apart, instead of being dropped.
//!
//! Forms: `scalar_type`, `scalar_type_argument`, `argument_types`, `matmul`, `dot`,
//! `input_weight`, `cast`, `found_dtype` (PyTorch); `op_input`, `op_argument` (TensorFlow).

use super::fields::{regex, Builder};
use super::{Pattern, Signature, SignatureKind};

pub(super) const FIELDS: &[&str] = &[
    "form",
    "expected",
    "actual",
    "op",
    "argument",
    "input_index",
    "operand",
    "device_mismatch",
];

pub(super) const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "expected scalar type",
        parse: scalar_type,
    },
    Pattern {
        needle: "Expected object of scalar type",
        parse: scalar_type_argument,
    },
    Pattern {
        needle: "to have the same dtype, but got",
        parse: matmul,
    },
    Pattern {
        needle: "to have same dtype, but found",
        parse: dot,
    },
    Pattern {
        needle: "Input type (",
        parse: input_weight,
    },
    Pattern {
        needle: "scalar types: ",
        parse: argument_types,
    },
    Pattern {
        needle: "can't be cast to the desired output type",
        parse: cast,
    },
    Pattern {
        needle: "Found dtype",
        parse: found_dtype,
    },
    Pattern {
        needle: "was expected to be a",
        parse: op_input,
    },
    Pattern {
        needle: "that does not match type",
        parse: op_argument,
    },
];

fn base(form: &str, expected: &str, actual: &str) -> Builder {
    Builder::new(SignatureKind::DtypeMismatch)
        .set("form", form)
        .set("expected", clean(expected))
        .set("actual", clean(actual))
}

fn clean(name: &str) -> &str {
    let name = name.trim();
    name.strip_prefix("c10::").unwrap_or(name)
}

/// `expected scalar type Float but found Double`.
fn scalar_type(text: &str) -> Option<Signature> {
    let c = regex!(r"expected scalar type (\w+) but found (\w+)").captures(text)?;
    Some(base("scalar_type", &c[1], &c[2]).build())
}

/// PyTorch < 1.6: `Expected object of scalar type Float but got scalar type Double for
/// argument #2 'mat2' in call to _th_mm`.
fn scalar_type_argument(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Expected object of scalar type (\w+) but got scalar type (\w+) for argument #(\d+) '(\w+)'(?: in call to (\w+))?"
    )
    .captures(text)?;
    let b = base("scalar_type_argument", &c[1], &c[2])
        .opt("op", c.get(5).map(|m| m.as_str()))
        .set("argument", &c[4])
        .set("input_index", &c[3]);
    Some(b.build())
}

/// `expected m1 and m2 to have the same dtype, but got: float != c10::Half` (also `mat1`).
fn matmul(text: &str) -> Option<Signature> {
    let c = regex!(
        r"expected (m1|mat1) and (?:m2|mat2) to have the same dtype, but got: ([\w:]+) != ([\w:]+)"
    )
    .captures(text)?;
    Some(base("matmul", &c[2], &c[3]).build())
}

/// `torch.dot`: `expected both vectors to have same dtype, but found Float and Double`.
fn dot(text: &str) -> Option<Signature> {
    let c = regex!(r"expected both vectors to have same dtype, but found (\w+) and (\w+)")
        .captures(text)?;
    Some(base("dot", &c[1], &c[2]).build())
}

/// `Input type (torch.cuda.FloatTensor) and weight type (torch.FloatTensor) should be the
/// same`, also `... and bias type (c10::Half) ...`.
fn input_weight(text: &str) -> Option<Signature> {
    let c = regex!(r"Input type \(([^)]+)\) and (weight|bias) type \(([^)]+)\) should be the same")
        .captures(text)?;
    let (input, operand, weight) = (&c[1], &c[2], &c[3]);
    let device_mismatch = on_cuda(input) != on_cuda(weight);
    let b = base("input_weight", weight, input)
        .set("operand", operand)
        .set("device_mismatch", device_mismatch.to_string());
    Some(b.build())
}

/// Whether a legacy type name is a CUDA one (`torch.cuda.FloatTensor`, `CUDAFloatType`).
/// Plain dtype names (`float`, `c10::Half`) carry no device and count as not-CUDA on both
/// sides, so they never report a device mismatch.
fn on_cuda(type_name: &str) -> bool {
    type_name.contains("cuda") || type_name.contains("CUDA")
}

/// `Expected tensor for argument #1 'indices' to have one of the following scalar types: Long,
/// Int; but got torch.cuda.FloatTensor instead (while checking arguments for embedding)`.
fn argument_types(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Expected tensor for argument #(\d+) '(\w+)' to have (?:one of the following )?scalar types?: ([\w, ]+?); but got ([\w.]+) instead(?: \(while checking arguments for (\w+)\))?"
    )
    .captures(text)?;
    let b = base("argument_types", &c[3], &c[4])
        .opt("op", c.get(5).map(|m| m.as_str()))
        .set("argument", &c[2])
        .set("input_index", &c[1]);
    Some(b.build())
}

/// `result type Float can't be cast to the desired output type Long`.
fn cast(text: &str) -> Option<Signature> {
    let c = regex!(r"result type (\w+) can't be cast to the desired output type (\w+)")
        .captures(text)?;
    Some(base("cast", &c[2], &c[1]).build())
}

/// `Found dtype Long but expected Float` (loss functions' backward).
fn found_dtype(text: &str) -> Option<Signature> {
    let c = regex!(r"Found dtype (\w+) but expected (\w+)").captures(text)?;
    Some(base("found_dtype", &c[2], &c[1]).build())
}

/// TensorFlow eager: `cannot compute MatMul as input #1(zero-based) was expected to be a float
/// tensor but is a double tensor [Op:MatMul]`.
fn op_input(text: &str) -> Option<Signature> {
    let c = regex!(
        r"cannot compute (\w+) as input #(\d+)\(zero-based\) was expected to be a (\w+) tensor but is a (\w+) tensor"
    )
    .captures(text)?;
    let b = base("op_input", &c[3], &c[4])
        .set("op", &c[1])
        .set("input_index", &c[2]);
    Some(b.build())
}

/// TensorFlow graph building: `Input 'y' of 'AddV2' Op has type float32 that does not match
/// type int32 of argument 'x'.`: the other argument's type is the expected one.
fn op_argument(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Input '(\w+)' of '(\w+)' Op has type (\w+) that does not match type (\w+) of argument '(\w+)'"
    )
    .captures(text)?;
    let b = base("op_argument", &c[4], &c[3])
        .set("op", &c[2])
        .set("argument", &c[1]);
    Some(b.build())
}
