//! `browser_error`: front-end error reports (console output, `window.onerror`,
//! `unhandledrejection`, monitoring SDK events) from Chrome, Firefox and Safari.
//!
//! `form` and `message` are always present. Forms:
//! * `resource_load`: `Failed to load resource: ...`, `GET <url> net::ERR_...`, `GET <url> 404
//!   (Not Found)`, CSP `Refused to load ...`, webpack `Loading chunk 42 failed.`, Vite/ES module
//!   `Failed to fetch dynamically imported module: <url>`; with `url`, `status`, `net_error` ...;
//! * `unhandled_rejection`: `Uncaught (in promise) ...`, Safari `Unhandled Promise Rejection:
//!   ...`, `unhandledrejection: ...`, Sentry's `Non-Error promise rejection captured ...`;
//! * `uncaught_exception`: `Uncaught TypeError: ...`, or an `XxxError: ...` report followed by a
//!   browser stack frame (one with a URL).
//!
//! `source`, `line`, `column` come from the first stack frame with a location: Chrome's
//! `    at fn (url:line:col)` or Firefox/Safari's `fn@url:line:col`.

use super::fields::{regex, Builder};
use super::{Pattern, Signature, SignatureKind};

pub(super) const FIELDS: &[&str] = &[
    "form",
    "error_type",
    "message",
    "status",
    "status_text",
    "net_error",
    "method",
    "url",
    "resource",
    "csp_directive",
    "chunk",
    "source",
    "line",
    "column",
];

pub(super) const PATTERNS: &[Pattern] = &[
    Pattern {
        needle: "Failed to load resource",
        parse: failed_to_load,
    },
    Pattern {
        needle: "net::ERR_",
        parse: net_error,
    },
    Pattern {
        needle: "Content Security Policy directive",
        parse: csp,
    },
    Pattern {
        needle: "Loading chunk ",
        parse: chunk,
    },
    Pattern {
        needle: "Loading CSS chunk ",
        parse: chunk,
    },
    Pattern {
        needle: "dynamically imported module",
        parse: dynamic_import,
    },
    Pattern {
        needle: "Importing a module script failed",
        parse: dynamic_import,
    },
    // Chrome's failed-request line; one needle per method keeps URL-heavy logs off the regex.
    Pattern {
        needle: "GET http",
        parse: http_status,
    },
    Pattern {
        needle: "POST http",
        parse: http_status,
    },
    Pattern {
        needle: "PUT http",
        parse: http_status,
    },
    Pattern {
        needle: "PATCH http",
        parse: http_status,
    },
    Pattern {
        needle: "DELETE http",
        parse: http_status,
    },
    Pattern {
        needle: "Uncaught (in promise)",
        parse: rejection,
    },
    Pattern {
        needle: "Unhandled Promise Rejection",
        parse: rejection,
    },
    Pattern {
        needle: "unhandledrejection: ",
        parse: rejection,
    },
    Pattern {
        needle: "Non-Error promise rejection captured with value",
        parse: rejection,
    },
    Pattern {
        needle: "Uncaught ",
        parse: uncaught,
    },
    Pattern {
        needle: "uncaught exception: ",
        parse: uncaught,
    },
    Pattern {
        needle: "Error: ",
        parse: reported_error,
    },
];

fn base(form: &str, message: &str) -> Builder {
    Builder::new(SignatureKind::BrowserError)
        .set("form", form)
        .set("message", message.trim())
}

/// The rest of the line from byte `start`.
fn line_from(text: &str, start: usize) -> &str {
    let rest = text.get(start..).unwrap_or("");
    rest.lines().next().unwrap_or("").trim_end()
}

/// The first URL in the text, without Chrome's `:line` console suffix (`.../api/cart:1`).
fn first_url(text: &str) -> Option<&str> {
    let m = regex!(r#"\b(?:https?|wss?)://[^\s'"()<>]+"#).find(text)?;
    let url = m.as_str().trim_end_matches(['.', ',', ';']);
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let has_path = url[after_scheme..].contains('/');
    match url.rsplit_once(':') {
        Some((head, tail))
            if has_path
                && head.len() > after_scheme
                && tail.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(head)
        }
        _ => Some(url),
    }
}

/// `Failed to load resource: the server responded with a status of 404 (Not Found)` or
/// `Failed to load resource: net::ERR_NAME_NOT_RESOLVED`.
fn failed_to_load(text: &str) -> Option<Signature> {
    let c = regex!(
        r"Failed to load resource: (?:the server responded with a status of (\d{3}) \(([^)]*)\)|net::(ERR_\w+))"
    )
    .captures(text)?;
    let whole = c.get(0)?;
    let b = base("resource_load", line_from(text, whole.start()))
        .opt("status", c.get(1).map(|m| m.as_str()))
        .opt(
            "status_text",
            c.get(2).map(|m| m.as_str()).filter(|s| !s.is_empty()),
        )
        .opt("net_error", c.get(3).map(|m| m.as_str()))
        .opt("url", first_url(text));
    Some(b.build())
}

/// Chrome's failed request line: `GET https://cdn.example.com/app.js net::ERR_CONNECTION_REFUSED`.
fn net_error(text: &str) -> Option<Signature> {
    let request = regex!(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) net::(ERR_\w+)");
    if let Some(c) = request.captures(text) {
        let whole = c.get(0)?;
        let b = base("resource_load", line_from(text, whole.start()))
            .set("net_error", &c[3])
            .set("method", &c[1])
            .set("url", &c[2]);
        return Some(b.build());
    }
    let c = regex!(r"net::(ERR_\w+)").captures(text)?;
    let whole = c.get(0)?;
    let start = text[..whole.start()].rfind('\n').map_or(0, |i| i + 1);
    let b = base("resource_load", line_from(text, start))
        .set("net_error", &c[1])
        .opt("url", first_url(text));
    Some(b.build())
}

/// Chrome's failed request line with an HTTP error status: `POST https://api/x 500 (Internal
/// Server Error)`. Statuses below 400 are not failures.
fn http_status(text: &str) -> Option<Signature> {
    let c = regex!(r"\b(GET|POST|PUT|PATCH|DELETE) (https?://\S+) ([45]\d\d) \(([^)]*)\)")
        .captures(text)?;
    let whole = c.get(0)?;
    let b = base("resource_load", line_from(text, whole.start()))
        .set("status", &c[3])
        .opt("status_text", Some(&c[4]).filter(|s| !s.is_empty()))
        .set("method", &c[1])
        .set("url", &c[2]);
    Some(b.build())
}

/// `Refused to load the script 'https://x/y.js' because it violates the following Content
/// Security Policy directive: "script-src 'self'".` (also `connect to`, `frame`, inline code).
fn csp(text: &str) -> Option<Signature> {
    if let Some(c) = regex!(
        r#"Refused to (?:load the (\w+) |(connect to) |(frame) |(create a worker from) |load )?'([^']*)' because it violates the following Content Security Policy directive: "([^"]*)""#
    )
    .captures(text)
    {
        let resource = c
            .get(1)
            .map(|m| m.as_str())
            .or(c.get(2).map(|_| "connect"))
            .or(c.get(3).map(|_| "frame"))
            .or(c.get(4).map(|_| "worker"));
        let whole = c.get(0)?;
        let b = base("resource_load", line_from(text, whole.start()))
            .set("url", &c[5])
            .opt("resource", resource)
            .set("csp_directive", &c[6]);
        return Some(b.build());
    }
    let c = regex!(
        r#"Refused to (?:execute|apply) (inline script|inline event handler|inline style) because it violates the following Content Security Policy directive: "([^"]*)""#
    )
    .captures(text)?;
    let whole = c.get(0)?;
    let b = base("resource_load", line_from(text, whole.start()))
        .set("resource", &c[1])
        .set("csp_directive", &c[2]);
    Some(b.build())
}

/// webpack: `ChunkLoadError: Loading chunk 42 failed.` then `(error: https://.../42.js)`;
/// mini-css-extract-plugin: `Loading CSS chunk 7 failed.` then `(/static/css/7.css)`.
fn chunk(text: &str) -> Option<Signature> {
    let c = regex!(
        r"(?:(\w+): )?Loading (CSS )?chunk ([\w\-/.~]+?) failed\.?(?:\s*\((?:(?:error|missing|timeout): )?([^)\s]+)\))?"
    )
    .captures(text)?;
    let whole = c.get(0)?;
    let message_start = c.get(1).map_or(whole.start(), |m| m.end() + 2);
    let resource = if c.get(2).is_some() {
        "stylesheet"
    } else {
        "script"
    };
    let b = base("resource_load", line_from(text, message_start))
        .opt("error_type", c.get(1).map(|m| m.as_str()))
        .opt("url", c.get(4).map(|m| m.as_str()))
        .set("resource", resource)
        .set("chunk", &c[3]);
    Some(b.build())
}

/// Chrome: `TypeError: Failed to fetch dynamically imported module: https://.../Page.js`;
/// Firefox: `error loading dynamically imported module: <url>`; Safari: `Importing a module
/// script failed.` (no URL).
fn dynamic_import(text: &str) -> Option<Signature> {
    let c = regex!(
        r"(?:(\w+): )?((?:Failed to fetch|error loading) dynamically imported module: (\S+)|Importing a module script failed\.?)"
    )
    .captures(text)?;
    let b = base("resource_load", line_from(text, c.get(2)?.start()))
        .opt("error_type", c.get(1).map(|m| m.as_str()))
        .opt("url", c.get(3).map(|m| m.as_str()))
        .set("resource", "module");
    Some(b.build())
}

/// Splits `TypeError: Cannot read ...` into (`TypeError`, message). Thrown non-errors
/// (`Uncaught (in promise) undefined`) have no type.
fn split_error(s: &str) -> (Option<&str>, &str) {
    let s = s.trim();
    let is_type = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.')
            && (name.ends_with("Error") || name.ends_with("Exception"))
    };
    match s.split_once(':') {
        Some((name, rest)) if is_type(name) => (Some(name), rest.trim()),
        _ if is_type(s) => (Some(s), ""),
        _ => (None, s),
    }
}

/// Adds `source`, `line`, `column` from the first located stack frame after byte `from`.
fn with_frame(b: Builder, text: &str, from: usize, require_url: bool) -> Option<Builder> {
    let rest = text.get(from..).unwrap_or("");
    let chrome = regex!(
        r"(?m)^[ \t]*at (?:[^\n]*? \()?((?:[A-Za-z][\w+.\-]*://|/)[^\s()]*?):(\d+):(\d+)\)?[ \t]*$"
    )
    .captures(rest);
    let firefox = regex!(r"(?m)^[ \t]*[^\s@]*@((?:[A-Za-z][\w+.\-]*://|/)\S*?):(\d+):(\d+)[ \t]*$")
        .captures(rest);
    let start =
        |c: &Option<regex::Captures<'_>>| c.as_ref().and_then(|c| c.get(0)).map(|m| m.start());
    let frame = match (start(&chrome), start(&firefox)) {
        (Some(a), Some(f)) if f < a => firefox,
        (Some(_), _) => chrome,
        (None, _) => firefox,
    };
    match frame {
        Some(c) if !require_url || c[1].contains("://") => Some(
            b.set("source", &c[1])
                .set("line", &c[2])
                .set("column", &c[3]),
        ),
        _ if require_url => None,
        _ => Some(b),
    }
}

/// Unhandled promise rejections: Chrome's `Uncaught (in promise) <reason>`, Safari's
/// `Unhandled Promise Rejection: <reason>`, an `unhandledrejection: <reason>` event label, and
/// Sentry's `Non-Error promise rejection captured with value: <value>`. Any thrown value counts.
fn rejection(text: &str) -> Option<Signature> {
    let m = regex!(
        r"Uncaught \(in promise\)|Unhandled Promise Rejection:|\bunhandledrejection: |Non-Error promise rejection captured with value:"
    )
    .find(text)?;
    let rest = line_from(text, m.end());
    let rest = rest.trim_start_matches([':', ' ', '\t']);
    let (error_type, message) = split_error(rest);
    let status = regex!(r"status code (\d{3})")
        .captures(message)
        .map(|c| c[1].to_string());
    let b = base("unhandled_rejection", message)
        .opt("error_type", error_type)
        .opt("status", status);
    with_frame(b, text, m.end(), false).map(Builder::build)
}

/// `Uncaught TypeError: Cannot read properties of undefined (reading 'map')` + stack. After
/// Chrome's `Uncaught` an error type is required (`Uncaught exceptions: 0` is a counter, not a
/// failure); Firefox's older `uncaught exception: <value>` takes any value.
fn uncaught(text: &str) -> Option<Signature> {
    let c = regex!(r"\b(Uncaught|uncaught exception:) ([^\n]*)").captures(text)?;
    let rest = c.get(2)?;
    let (error_type, message) = split_error(rest.as_str());
    if error_type.is_none() && &c[1] == "Uncaught" {
        return None;
    }
    let b = base("uncaught_exception", message).opt("error_type", error_type);
    with_frame(b, text, rest.end(), false).map(Builder::build)
}

/// An error report without the console's `Uncaught` (SDK events, Firefox/Safari `stack`): a
/// line `XxxError: message` followed by a stack frame at a URL, which is what tells a browser
/// error from a Python or server-side one.
fn reported_error(text: &str) -> Option<Signature> {
    let c = regex!(r"(?m)^[ \t]*([A-Za-z_$][\w$]*(?:Error|Exception)): ([^\n]*)").captures(text)?;
    let whole = c.get(0)?;
    let b = base("uncaught_exception", &c[2]).set("error_type", &c[1]);
    with_frame(b, text, whole.end(), true).map(Builder::build)
}
