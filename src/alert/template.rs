//! Annotation templates in Prometheus' spelling: `{{ $labels.NAME }}` and `{{ $value }}`.
//!
//! Hand-written rather than a template engine: the two forms above are the whole language,
//! and engines such as minijinja reject the `$` these users already write in Prometheus rules.

use std::collections::BTreeMap;

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
pub(crate) fn render(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
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
    fn renders_labels_and_value() {
        let labels = BTreeMap::from([("service".to_string(), "llm-gateway".to_string())]);
        assert_eq!(
            render(
                "p95 of {{ $labels.service }} is {{$value}} ms",
                &labels,
                1149.7
            ),
            "p95 of llm-gateway is 1149.7 ms"
        );
        assert_eq!(render("{{ $labels.missing }}!", &labels, 0.0), "!");
        assert_eq!(
            render("{{ .Oops }} {{ unterminated", &labels, 0.0),
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
