use super::*;

/// `tests/headers/*.txt`: blocks of `line: …`, then the expected `log.*: value` fields and
/// `message: …`, separated by blank lines (see the files' comments).
const CASES: &[(&str, &str)] = &[
    (
        "frameworks.txt",
        include_str!("../../tests/headers/frameworks.txt"),
    ),
    ("syslog.txt", include_str!("../../tests/headers/syslog.txt")),
    (
        "no_header.txt",
        include_str!("../../tests/headers/no_header.txt"),
    ),
];

struct Case {
    file: &'static str,
    at: usize,
    line: String,
    fields: Vec<(String, String)>,
    message: String,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for &(file, text) in CASES {
        let mut current: Option<Case> = None;
        for (n, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            if raw.trim().is_empty() {
                out.extend(current.take());
                continue;
            }
            let (key, value) = raw
                .split_once(": ")
                .unwrap_or((raw.trim_end_matches(':'), ""));
            match key {
                "line" => {
                    out.extend(current.take());
                    current = Some(Case {
                        file,
                        at: n + 1,
                        line: value.to_string(),
                        fields: Vec::new(),
                        message: String::new(),
                    });
                }
                "message" => current.as_mut().expect("line first").message = value.to_string(),
                _ => current
                    .as_mut()
                    .expect("line first")
                    .fields
                    .push((key.to_string(), value.to_string())),
            }
        }
        out.extend(current);
    }
    out
}

#[test]
fn header_forms_from_the_data_files() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let header = parse_line(&case.line);
        let mut fields = header.fields(&case.line);
        fields.sort();
        let mut wanted = case.fields.clone();
        wanted.sort();
        let message = &case.line[header.message_start..];
        if fields != wanted || message != case.message {
            failures.push(format!(
                "{}:{}: {}\n  fields  {:?}\n  wanted  {:?}\n  message {:?}\n  wanted  {:?}",
                case.file, case.at, case.line, fields, case.fields, message, case.message
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_learned_shape_keeps_message_words_that_look_like_fields() {
    let mut learner = HeaderLearner::new();
    for i in 0..LEARN_LINES {
        let line = format!("[Sun Dec 04 04:47:{i:02} 2005] [error] child {i} exited");
        let h = learner.parse("apache", &line);
        assert_eq!(&line[h.message_start..], format!("child {i} exited"));
    }
    // On its own this line's header would take `node-7 12` (a node name and a number, as in
    // `134681 node-246 … 1077804742 1`); the stream's shape stops after the level.
    let line = "[Sun Dec 04 04:48:00 2005] [error] node-7 12 failed";
    assert_eq!(parse_line(line).message_start, line.find("failed").unwrap());
    let h = learner.parse("apache", line);
    assert_eq!(&line[h.message_start..], "node-7 12 failed");
    // Another stream learns its own shape.
    let other = "2015-10-18 18:01:47,978 INFO [main] org.example.App: started";
    let h = learner.parse("hadoop", other);
    assert_eq!(&other[h.message_start..], "started");
}

#[test]
fn a_stream_without_headers_learns_to_cut_nothing() {
    let mut learner = HeaderLearner::new();
    for i in 0..LEARN_LINES {
        let h = learner.parse("s", &format!("request {i} served"));
        assert_eq!(h.message_start, 0);
    }
    // Looks like a level on its own, but this stream's lines have no header.
    let line = "ERROR: disk full";
    assert_eq!(parse_line(line).message_start, 7);
    assert_eq!(learner.parse("s", line).message_start, 0);
}

#[test]
fn streams_are_bounded() {
    let mut learner = HeaderLearner::new();
    for i in 0..MAX_STREAMS + 10 {
        learner.parse(&format!("s{i}"), "2024-01-01 10:00:00 INFO x");
    }
    assert!(learner.streams.len() <= MAX_STREAMS);
    assert!(learner
        .streams
        .contains_key(&format!("s{}", MAX_STREAMS + 9)));
}

#[test]
fn levels_map_to_severity_numbers() {
    let cases = [
        ("INFO", Some(9)),
        ("[notice]", Some(10)),
        ("warning", Some(13)),
        ("W", Some(13)),
        ("E1129", Some(17)),
        ("FATAL", Some(21)),
        ("chatty", None),
    ];
    for (level, want) in cases {
        assert_eq!(severity_number(level), want, "{level}");
    }
}

#[test]
fn a_learned_shape_takes_any_word_at_a_name_place_and_a_bare_context() {
    let mut learner = HeaderLearner::new();
    for i in 0..LEARN_LINES {
        let line = format!(
            "{i}7 node-{i} unix.hw state_change.unavailable 10778047{i:02} 1 Component down"
        );
        let h = learner.parse("hpc", &line);
        assert_eq!(&line[h.message_start..], "Component down", "{line}");
    }
    // Words at the node and state places, even a level word, and a signed flag.
    for (line, message) in [
        (
            "2286759 full partition status 1061219795 -1 running",
            "running",
        ),
        (
            "2567354 node-147 switch_module error 1074098611 1 Link error",
            "Link error",
        ),
    ] {
        let h = learner.parse("hpc", line);
        assert_eq!(&line[h.message_start..], message, "{line}");
    }

    let mut learner = HeaderLearner::new();
    let head = "2017-05-16 00:00:04.693 2931 INFO nova.compute.manager";
    for i in 0..LEARN_LINES {
        let line = format!("{head} [req-{i} - - - - -] [instance: 9{i}] VM Started");
        let h = learner.parse("nova", &line);
        assert_eq!(
            &line[h.message_start..],
            format!("[instance: 9{i}] VM Started")
        );
    }
    let line = format!("{head} [-] [instance: 77] During sync_power_state");
    let h = learner.parse("nova", &line);
    assert_eq!(
        &line[h.message_start..],
        "[instance: 77] During sync_power_state"
    );
}

#[test]
fn while_learning_the_most_seen_shape_already_cuts() {
    let mut learner = HeaderLearner::new();
    let first = "- 1117838570 2005.06.03 R02-M1 2005-06-03-15.42.50.675872 R02-M1 RAS KERNEL INFO cache parity error";
    let h = learner.parse("bgl", first);
    assert_eq!(&first[h.message_start..], "cache parity error");
    // On its own `ciod:` would be taken for a logger; the stream's lines have none.
    let second = "- 1117838571 2005.06.03 R02-M1 2005-06-03-15.42.51.675872 R02-M1 RAS APP FATAL ciod: failed to read";
    assert_eq!(
        &second[parse_line(second).message_start..],
        "failed to read"
    );
    let h = learner.parse("bgl", second);
    assert_eq!(&second[h.message_start..], "ciod: failed to read");
}
