//! Annotation templates in Prometheus' spelling: `{{ $labels.NAME }}` and `{{ $value }}`,
//! plus `{{ $params.NAME }}` for the rule's parameters and `{{ $evidence.NAME }}` for its
//! `evidence_NAME` columns.
//!
//! Hand-written rather than a template engine: the two forms above are the whole language,
//! and engines such as minijinja reject the `$` these users already write in Prometheus rules.

use std::collections::BTreeMap;

use crate::model::Param;

/// `value` with at most three decimals and no trailing zeros.
pub(crate) fn format_value(value: f64) -> String {
    let s = format!("{value:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Expands the placeholders of `template`; unknown labels render empty, unknown
/// placeholders are left as written so a typo is visible in the alert.
/// What a template can refer to besides the labels.
pub(crate) struct Context<'a> {
    pub value: f64,
    pub params: &'a BTreeMap<String, Param>,
    pub evidence: &'a BTreeMap<String, serde_json::Value>,
}

pub(crate) fn render(
    template: &str,
    labels: &BTreeMap<String, String>,
    cx: &Context<'_>,
) -> String {
    let value = cx.value;
    let params = cx.params;
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let expr = after[..close].trim();
        if expr == "$value" {
            out.push_str(&format_value(value));
        } else if let Some(name) = expr.strip_prefix("$labels.") {
            out.push_str(labels.get(name.trim()).map(String::as_str).unwrap_or(""));
        } else if let Some(p) = expr
            .strip_prefix("$params.")
            .and_then(|n| params.get(n.trim()))
        {
            out.push_str(&p.to_string());
        } else if let Some(name) = expr.strip_prefix("$evidence.") {
            match cx.evidence.get(name.trim()) {
                Some(serde_json::Value::String(s)) => out.push_str(s),
                Some(serde_json::Value::Number(n)) => out.push_str(
                    &n.as_f64()
                        .map(format_value)
                        .unwrap_or_else(|| n.to_string()),
                ),
                Some(other) => out.push_str(&other.to_string()),
                None => {}
            }
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_value_and_params() {
        let labels = BTreeMap::from([("service".to_string(), "llm-gateway".to_string())]);
        let params = BTreeMap::from([("limit".to_string(), Param::Int(500))]);
        let evidence = BTreeMap::from([
            ("stage".to_string(), serde_json::json!("forward")),
            ("share".to_string(), serde_json::json!(0.7812345)),
        ]);
        let cx = Context {
            value: 1149.7,
            params: &params,
            evidence: &evidence,
        };
        assert_eq!(
            render(
                "p95 of {{ $labels.service }} is {{$value}} ms (> {{ $params.limit }}); \
                 {{ $evidence.stage }} {{ $evidence.share }}",
                &labels,
                &cx
            ),
            "p95 of llm-gateway is 1149.7 ms (> 500); forward 0.781"
        );
        assert_eq!(render("{{ $labels.missing }}!", &labels, &cx), "!");
        assert_eq!(
            render("{{ .Oops }} {{ unterminated", &labels, &cx),
            "{{ .Oops }} {{ unterminated"
        );
    }

    #[test]
    fn values_are_short() {
        assert_eq!(format_value(500.0), "500");
        assert_eq!(format_value(0.12345), "0.123");
        assert_eq!(format_value(-0.0001), "0");
    }
}
