//! Fire and clear conditions: `value OP NUMBER` where NUMBER may be a `$param`.

use std::collections::BTreeMap;

use super::Param;

/// A comparison of a finding's value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    op: Op,
    threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Condition {
    /// Parses `value > 95`, `value<=$low` and the like.
    pub fn parse(text: &str, params: &BTreeMap<String, Param>) -> Result<Self, String> {
        let rest = text
            .trim()
            .strip_prefix("value")
            .ok_or_else(|| format!("condition {text:?} must start with `value`"))?
            .trim_start();
        let (op, rhs) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ]
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|r| (*op, r.trim())))
        .ok_or_else(|| format!("condition {text:?} needs one of > >= < <= == !="))?;
        let threshold = match rhs.strip_prefix('$') {
            Some(name) => match params.get(name) {
                Some(Param::Int(i)) => *i as f64,
                Some(Param::Float(f)) => *f,
                Some(other) => return Err(format!("parameter ${name} = {other} is not a number")),
                None => return Err(format!("condition {text:?} uses unknown parameter ${name}")),
            },
            None => rhs
                .parse::<f64>()
                .map_err(|_| format!("condition {text:?}: {rhs:?} is not a number"))?,
        };
        Ok(Condition { op, threshold })
    }

    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Gt => value > self.threshold,
            Op::Ge => value >= self.threshold,
            Op::Lt => value < self.threshold,
            Op::Le => value <= self.threshold,
            Op::Eq => value == self.threshold,
            Op::Ne => value != self.threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_parameters() {
        let params = BTreeMap::from([("high".to_string(), Param::Int(95))]);
        let c = Condition::parse("value > $high", &params).unwrap();
        assert!(c.holds(96.0) && !c.holds(95.0));
        let c = Condition::parse(" value<=85.5", &params).unwrap();
        assert!(c.holds(85.5) && !c.holds(86.0));
        assert!(Condition::parse("v > 1", &params).is_err());
        assert!(Condition::parse("value ~ 1", &params).is_err());
        assert!(Condition::parse("value > $nope", &params)
            .unwrap_err()
            .contains("unknown parameter $nope"));
    }
}
