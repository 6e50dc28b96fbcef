//! The JUnit XML report of `faultline test --junit FILE`, in the Apache Ant form that
//! `tests/junit/JUnit.xsd` defines (what Jenkins, GitLab and GitHub test reporters read).
//!
//! Written by hand: the crates we looked at write a `<testsuites>` root with attributes,
//! which that schema refuses; the format is a dozen elements.

use std::fmt::Write as _;

use super::FileReport;

/// The report of every test file: one `<testsuite>` per file, one `<testcase>` per test.
/// `timestamp` is local time `YYYY-MM-DDTHH:MM:SS` (the schema allows no zone).
pub fn render(files: &[FileReport], timestamp: &str, hostname: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (id, f) in files.iter().enumerate() {
        let failures = f.tests.iter().filter(|t| t.failure.is_some()).count();
        let errors = usize::from(f.error.is_some());
        let time: f64 = f.tests.iter().map(|t| t.seconds).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" package=\"faultline\" id=\"{id}\" timestamp=\"{}\" \
             hostname=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" \
             time=\"{time:.3}\">",
            escape(&f.path),
            escape(timestamp),
            escape(hostname),
            f.tests.len() + errors,
        );
        out.push_str("    <properties/>\n");
        if let Some(e) = &f.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"(file)\" classname=\"{}\" time=\"0\">\n      \
                 <error type=\"invalid\" message=\"{}\">{}</error>\n    </testcase>",
                escape(&f.path),
                escape(first_line(e)),
                escape(e)
            );
        }
        for t in &f.tests {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(&t.name),
                escape(&f.path),
                t.seconds
            );
            match &t.failure {
                None => out.push_str("/>\n"),
                Some(text) => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"expectation\" message=\"{}\">{}</failure>\n    \
                         </testcase>",
                        escape(first_line(text)),
                        escape(text)
                    );
                }
            }
        }
        out.push_str("    <system-out/>\n    <system-err/>\n  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// XML text and attribute escaping; characters XML 1.0 cannot carry become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::TestReport;
    use super::*;

    #[test]
    fn failures_are_escaped_and_counted() {
        let files = vec![FileReport {
            path: "rules<1>.yaml".into(),
            error: None,
            tests: vec![
                TestReport {
                    name: "ok".into(),
                    seconds: 0.5,
                    failure: None,
                },
                TestReport {
                    name: "bad & \"wrong\"".into(),
                    seconds: 0.25,
                    failure: Some("line one\nline \u{1}two".into()),
                },
            ],
        }];
        let xml = render(&files, "2026-11-30T01:02:03", "host");
        assert!(xml.contains("name=\"rules&lt;1&gt;.yaml\""), "{xml}");
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\" time=\"0.750\""),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"bad &amp; &quot;wrong&quot;\""),
            "{xml}"
        );
        assert!(
            xml.contains("message=\"line one\">line one\nline \u{FFFD}two</failure>"),
            "{xml}"
        );
    }
}
