use super::*;

fn template(message: &str) -> String {
    let mut masked = Masked::default();
    masked.mask(message);
    masked.template
}

#[test]
fn masks_the_common_variable_kinds() {
    let cases = [
        (
            "Received block blk_-6952295868487656571 of size 67108864 from /10.251.42.84",
            "Received block <*> of size <*> from <*>",
        ),
        (
            "src: /10.251.30.6:33145 dest: /10.251.30.6:50010",
            "src: <*>:<*> dest: <*>:<*>",
        ),
        ("proxy.cse.cuhk.edu.hk:5070 open", "<*>:<*> open"),
        (
            "image 0673dd71-34c5-4fbb-86c4-40623fbe45b4 at (/var/lib/nova/x): checking",
            "image <*> at (<*>): checking",
        ),
        (
            "Input split: hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log:21876+7292",
            "Input split: hdfs://<*>",
        ),
        ("lifetime 00:01", "lifetime <*>"),
        ("at 2017-05-16T00:00:00.008Z done", "at <*> done"),
        ("since=2026-11-01T12:00:00+02:00", "since=<*>"),
        (
            "url=https://api.example.com/v1?x=1 path=/var/lib/x:3 ok",
            "url=https://<*> path=<*> ok",
        ),
        (
            "DHCPDISCOVER from 00:11:43:e3:ba:c3 via eth1",
            "DHCPDISCOVER from <*> via eth1",
        ),
        (
            "IPV6 Addr: 2607:f140:6000:8:c6b3:1ff:fecd:467f",
            "IPV6 Addr: <*>",
        ),
        (
            "headroom=<memory:10240, vCores:-17>",
            "headroom=<memory:<*>, vCores:<*>",
        ),
        (
            "steps = 1514038440000##6993##548365",
            "steps = <*>##<*>##<*>",
        ),
        (
            "session closed for user root",
            "session closed for user <*>",
        ),
        ("retry  shortly   ...", "retry shortly ..."),
        (
            "took 4.5s, GET https://api.example.com/v1/x?id=3.",
            "took <*>, GET https://<*>.",
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(template(message), expected, "{message}");
    }
}

/// What is a variable from a message's first line on, without waiting for other values at
/// its place (streaming templates), and the look-alikes that stay literal.
#[test]
fn variables_recognised_from_the_first_line() {
    let cases = [
        // Host names end in a top-level domain; packages, classes and files do not.
        ("resolve get.sogou.com failed", "resolve <*> failed"),
        ("connect db-1.internal:5432", "connect <*>:<*>"),
        ("loaded org.apache.hadoop ok", "loaded org.apache.hadoop ok"),
        ("read conf.xml", "read conf.xml"),
        ("Cache.Flush called", "Cache.Flush called"),
        // Weekday and month names.
        ("backup due Sunday at noon", "backup due Sunday at noon"),
        ("backup due Sun at noon", "backup due <*> at noon"),
        ("rotated in Dec", "rotated in <*>"),
        // A numbered instance after `_`; a number inside a name is part of the name.
        (
            "no answer from any [Thunderbird_A8] source",
            "no answer from any [<*>] source",
        ),
        ("Block broadcast_9 stored", "Block <*> stored"),
        ("jk2_init() Found child", "jk2_init() Found child"),
        ("via eth1 port ssh2", "via eth1 port ssh2"),
        // User names after `for user` / `invalid user`; other uses of the word stay.
        (
            "session opened for user news by x",
            "session opened for user <*> by x",
        ),
        ("Invalid user test9 from x", "Invalid user <*> from x"),
        ("Invalid user user from x", "Invalid user <*> from x"),
        ("check pass; user unknown", "check pass; user unknown"),
        (
            "No more user authentication methods",
            "No more user authentication methods",
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(template(message), expected, "{message}");
    }
}

#[test]
fn units_point_into_message_and_template() {
    let mut masked = Masked::default();
    let message = "user=bob id=42";
    masked.mask(message);
    let texts: Vec<(&str, &str, bool)> = masked
        .units
        .iter()
        .map(|u| {
            (
                &message[u.start as usize..u.end as usize],
                &masked.template[u.tpl_start as usize..u.tpl_end as usize],
                u.variable,
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("user", "user", false),
            ("bob", "bob", false),
            ("id", "id", false),
            ("42", "<*>", true)
        ]
    );
    assert!(masked.units[1].wordlike);
}

#[test]
fn long_messages_are_mined_on_their_start() {
    let mut masked = Masked::default();
    let message = format!("start {} end", "é".repeat(MAX_MESSAGE_BYTES));
    masked.mask(&message);
    assert!(masked.template.len() <= MAX_MESSAGE_BYTES);
    assert!(masked.template.starts_with("start é"));
    assert!(!masked.template.ends_with("end"));
}

#[test]
fn odd_input_does_not_panic() {
    for message in [
        "",
        "   ",
        "://",
        "a://",
        "é://x",
        "((((",
        "::::",
        "日本語 テキスト 12",
        "\u{0}\u{1}",
    ] {
        template(message);
    }
}
