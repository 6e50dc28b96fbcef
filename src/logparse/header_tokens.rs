//! Tokens of a line's start and what header field each can be (see `header`).

use super::Kind;

/// Longest bracketed token (`[Sun Dec 04 04:47:44 2005]`, `[req-… - - -]`) read as one.
const MAX_BRACKET_BYTES: usize = 256;

/// Level words, upper case; a token is a level in upper, lower or capitalised spelling.
const LEVELS: [&str; 21] = [
    "TRACE",
    "DEBUG",
    "DBG",
    "VERBOSE",
    "INFO",
    "INFORMATION",
    "NOTICE",
    "WARN",
    "WARNING",
    "ERROR",
    "ERR",
    "CRIT",
    "CRITICAL",
    "ALERT",
    "EMERG",
    "FATAL",
    "SEVERE",
    "PANIC",
    "FINE",
    "FINER",
    "FINEST",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Reads tokens: runs of non-blanks, a `|` on its own, or a bracketed group that may hold
/// blanks when its `]` ends the token.
pub struct Cursor<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(line: &'a str) -> Self {
        Self { line, pos: 0 }
    }

    pub fn next_token(&mut self) -> Option<(usize, usize)> {
        let token = self.peek_token()?;
        self.pos = token.1;
        Some(token)
    }

    pub fn peek_token(&self) -> Option<(usize, usize)> {
        let bytes = self.line.as_bytes();
        let mut start = self.pos;
        while start < bytes.len() && bytes[start].is_ascii_whitespace() {
            start += 1;
        }
        if start >= bytes.len() {
            return None;
        }
        if bytes[start] == b'|' {
            return Some((start, start + 1));
        }
        if bytes[start] == b'[' {
            if let Some(end) = bracket_end(bytes, start) {
                return Some((start, end));
            }
        }
        let mut end = start;
        while end < bytes.len() && !bytes[end].is_ascii_whitespace() && bytes[end] != b'|' {
            end += 1;
        }
        Some((start, end))
    }
}

/// The end of the bracketed group at `start`, when its closing `]` ends a token.
fn bracket_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let limit = bytes.len().min(start + MAX_BRACKET_BYTES);
    for (i, &b) in bytes.iter().enumerate().take(limit).skip(start) {
        match b {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    let after = bytes.get(i + 1);
                    return after
                        .is_none_or(|&a| a.is_ascii_whitespace() || a == b'|')
                        .then_some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// What the classifier knows of the tokens before.
pub struct ScanContext<'a> {
    pub last: Option<Kind>,
    /// The last token was a strong field (nothing weak pending).
    pub last_strong: bool,
    /// The last token ended a syslog timestamp: a host name may follow.
    pub syslog_time: bool,
    /// The last token was a month name.
    pub after_month: bool,
    /// The text of the next token.
    pub next: Option<&'a str>,
}

/// A weak token: a header field only when a strong one that accepts it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weak {
    /// `-` at the start of the line (an alert label).
    Label,
    /// A word in capitals (`RAS`, `KERNEL`).
    Caps,
    /// A token with a digit or a dot (`node-246`, `unix.hw`, `R02-M1-N0-C:J12-U11`).
    Id,
    /// A syslog host name.
    Host,
    /// Any other word.
    Word,
}

/// A classified token.
#[derive(Debug, Clone, Copy)]
pub struct Class {
    pub kind: Kind,
    /// `None` for a strong token.
    pub weak: Option<Weak>,
    /// The header ends here (`sshd[42]:`, `ERROR:`).
    pub terminal: bool,
    /// `-` or `|` between fields.
    pub separator: Option<u8>,
    /// Bytes of the token left out of the value at its start and end (`[`, `]:`).
    pub trim: (usize, usize),
    /// Byte range, within the token, of a pid written in the token (`sshd[42]:`).
    pub pid: Option<(usize, usize)>,
    pub month: bool,
    pub clock: bool,
    accepts: &'static [Weak],
}

const IDS: &[Weak] = &[Weak::Label, Weak::Caps, Weak::Id];

impl Class {
    fn strong(kind: Kind, accepts: &'static [Weak]) -> Self {
        Self {
            kind,
            weak: None,
            terminal: false,
            separator: None,
            trim: (0, 0),
            pid: None,
            month: false,
            clock: false,
            accepts,
        }
    }

    fn weak(kind: Kind, weak: Weak) -> Self {
        Self {
            weak: Some(weak),
            ..Self::strong(kind, &[])
        }
    }

    /// Whether weak tokens of this sort may stand before this strong one.
    pub fn accepts(&self, weak: Weak) -> bool {
        self.accepts.contains(&weak)
    }
}

/// A level word in a consistent case: `INFO`, `info`, `Info`.
fn is_level(word: &str) -> bool {
    let b = word.as_bytes();
    if b.is_empty() || b.len() > 11 || !b.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let rest_lower = b[1..].iter().all(u8::is_ascii_lowercase);
    let consistent = b.iter().all(u8::is_ascii_uppercase) || rest_lower;
    consistent && LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word))
}

/// glog's level and date: `I1129`.
fn is_glog_level(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 5 && b"IWEF".contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit)
}

fn is_name_of(word: &str, short: &[&str], long: &[&str]) -> bool {
    let b = word.as_bytes();
    let cased = !b.is_empty()
        && b[0].is_ascii_uppercase()
        && (b[1..].iter().all(u8::is_ascii_lowercase) || b.iter().all(u8::is_ascii_uppercase));
    cased
        && (short.iter().any(|m| m.eq_ignore_ascii_case(word))
            || long.iter().any(|m| m.eq_ignore_ascii_case(word)))
}

pub fn is_month(word: &str) -> bool {
    is_name_of(word, &MONTHS, &MONTH_NAMES)
}

pub fn is_weekday(word: &str) -> bool {
    is_name_of(word, &WEEKDAYS, &WEEKDAY_NAMES)
}

/// What a digits-and-punctuation token says about time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeShape {
    pub date: bool,
    pub clock: bool,
    pub epoch: bool,
}

/// Dates (`2015-10-18`, `17/06/09`, `2005.06.03`, `20171223-…`), clock times (`18:01:47,978`,
/// `22:15:29:606`), ISO 8601 (`2017-05-16T00:00:00.008Z`) and epochs (`1117838570`).
pub fn time_shape(token: &str) -> TimeShape {
    let t = token.trim_end_matches([',', ':']);
    let b = t.as_bytes();
    let allowed = |c: &u8| c.is_ascii_digit() || b"-./:,_TZ+".contains(c);
    if b.is_empty() || !b[0].is_ascii_digit() || !b.iter().all(allowed) {
        return TimeShape::default();
    }
    // Digit groups and the separator before each.
    let mut groups: Vec<(usize, u8)> = Vec::new();
    let mut i = 0;
    let mut sep = 0u8;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            groups.push((i - start, sep));
        }
        if i < b.len() {
            sep = b[i];
            i += 1;
        }
    }
    // `18:01`, or `23:1:5` (unpadded) with three parts.
    let short = |g: &(usize, u8)| (1..=2).contains(&g.0);
    let clock = groups
        .windows(2)
        .any(|w| short(&w[0]) && w[1].0 == 2 && w[1].1 == b':')
        || groups
            .windows(3)
            .any(|w| w.iter().all(short) && w[1].1 == b':' && w[2].1 == b':');
    let year = |k: usize| groups[k].0 == 4 && (t[..2] == *"19" || t[..2] == *"20");
    let date = groups.len() >= 3
        && ((year(0) && b"-./".contains(&groups[1].1) && groups[1].0 <= 2)
            || (groups[..3].iter().all(|g| g.0 == 2)
                && groups[1].1 == b'/'
                && groups[2].1 == b'/'));
    let epoch = matches!(
        groups.as_slice(),
        [(10 | 13, _)] | [(10 | 13, _), (_, b'.')]
    ) && b[0] == b'1';
    TimeShape { date, clock, epoch }
}

/// A bracketed token: a time, a level, a thread, or a request context.
pub fn classify_bracket(token: &str, ctx: &ScanContext) -> Option<Class> {
    let inner = &token[1..token.len() - 1];
    let trim = (1, 1);
    if is_level(inner) {
        return Some(Class {
            trim,
            ..Class::strong(Kind::Level, IDS)
        });
    }
    let words: Vec<&str> = inner.split_ascii_whitespace().collect();
    let timeish = |w: &&str| {
        is_month(w)
            || is_weekday(w)
            || w.bytes()
                .all(|c| c.is_ascii_digit() || b".:-/,".contains(&c))
    };
    let anchored = words.iter().any(|w| {
        let s = time_shape(w);
        s.clock || s.date || is_month(w)
    });
    if !words.is_empty() && anchored && words.iter().all(timeish) {
        return Some(Class {
            trim,
            ..Class::strong(Kind::Time, IDS)
        });
    }
    if words.len() == 1 {
        return Some(Class {
            trim,
            ..Class::strong(Kind::Thread, &[])
        });
    }
    let after_field = matches!(ctx.last, Some(Kind::Level | Kind::Logger | Kind::Thread));
    (after_field && ctx.last_strong && !words.is_empty()).then(|| Class {
        trim,
        ..Class::strong(Kind::Context, &[])
    })
}

/// A token that is not bracketed.
pub fn classify_word(token: &str, ctx: &ScanContext) -> Option<Class> {
    if token == "-" || token == "|" {
        if ctx.last.is_none() {
            return Some(Class::weak(Kind::Context, Weak::Label));
        }
        return Some(Class {
            separator: Some(token.as_bytes()[0]),
            ..Class::strong(Kind::Separator, &[])
        });
    }
    if let Some(class) = level_or_time(token, ctx) {
        return Some(class);
    }
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) && token.len() <= 12 {
        return Some(Class::strong(Kind::Pid, &[Weak::Label, Weak::Id]));
    }
    if let Some(class) = logger(token, ctx) {
        return Some(class);
    }
    let name_char = |b: u8| b.is_ascii_alphanumeric() || b"_-.$@#:/*".contains(&b);
    if !token.bytes().all(name_char) {
        return None;
    }
    if ctx.syslog_time {
        return Some(Class::weak(Kind::Host, Weak::Host));
    }
    let dotted = token.contains('.') && token.as_bytes()[0].is_ascii_alphabetic();
    if dotted && ctx.last == Some(Kind::Level) && ctx.last_strong && !token.contains([':', '/']) {
        // `INFO nova.compute.manager`: the logger, after the level.
        return Some(Class::strong(Kind::Logger, &[]));
    }
    if dotted || token.bytes().any(|b| b.is_ascii_digit()) {
        return Some(Class::weak(Kind::Context, Weak::Id));
    }
    let caps = token.len() >= 2
        && token
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    Some(Class::weak(
        Kind::Context,
        if caps { Weak::Caps } else { Weak::Word },
    ))
}

fn level_or_time(token: &str, ctx: &ScanContext) -> Option<Class> {
    let core = token.trim_end_matches(':');
    let terminal = core.len() < token.len();
    let after_time = matches!(ctx.last, Some(Kind::Time | Kind::Pid)) && ctx.last_strong;
    let single = core.len() == 1 && b"EWIDVF".contains(&core.as_bytes()[0]) && after_time;
    if is_level(core) || is_glog_level(core) || single {
        return Some(Class {
            terminal,
            trim: (0, token.len() - core.len()),
            ..Class::strong(Kind::Level, IDS)
        });
    }
    let month = is_month(token);
    if month || is_weekday(token) {
        return Some(Class {
            month,
            ..Class::strong(Kind::Time, IDS)
        });
    }
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    let day = ctx.after_month && digits && token.len() <= 2;
    // `Sun Dec 04 04:47:44 2005`: a year after a month-day-clock time.
    let year = ctx.syslog_time && digits && token.len() == 4 && token.starts_with(['1', '2']);
    // `081109 203615`: a compact date and time, told apart from other numbers by the pair.
    let compact = digits
        && ((matches!(token.len(), 6 | 8)
            && ctx
                .next
                .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit())))
            || (token.len() == 6 && ctx.last == Some(Kind::Time)));
    let shape = time_shape(token);
    if day || year || compact || shape.date || shape.clock || shape.epoch {
        return Some(Class {
            clock: shape.clock,
            trim: (0, token.len() - token.trim_end_matches([',', ':']).len()),
            ..Class::strong(Kind::Time, IDS)
        });
    }
    None
}

/// `sshd[24200]:`, `crond(pam_unix)[2915]:`, `org.apache.Foo:`, `kernel:`, glog's `file.cc:42]`.
fn logger(token: &str, ctx: &ScanContext) -> Option<Class> {
    let glog = token.ends_with(']') && !token.starts_with('[') && ctx.last == Some(Kind::Pid);
    let body = if glog {
        token.strip_suffix(']')?
    } else {
        token.strip_suffix(':')?
    };
    let (name, pid) = match body.strip_suffix(']').and_then(|b| b.rsplit_once('[')) {
        Some((name, pid)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some((name.len() + 1, name.len() + 1 + pid.len())))
        }
        _ => (body, None),
    };
    let ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.$/@()#:".contains(&b));
    ok.then(|| Class {
        terminal: true,
        trim: (0, token.len() - name.len()),
        pid,
        ..Class::strong(Kind::Logger, &[Weak::Host])
    })
}
