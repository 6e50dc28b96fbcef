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
        (
            "proxy.cse.cuhk.edu.hk:5070 open",
            "proxy.cse.cuhk.edu.hk:<*> open",
        ),
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
