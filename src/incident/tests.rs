use std::collections::BTreeMap;

use super::config::{Direction, IndicatorConfig};
use super::*;
use crate::alert::Alert;
use crate::model::{EventTime, QueryRow, Window};

const MIN: i64 = 60_000_000_000;

fn window(i: i64) -> Window {
    Window {
        start: EventTime(i * MIN),
        end: EventTime((i + 1) * MIN),
    }
}

fn indicator(id: &str, direction: Direction, zero: bool) -> IndicatorConfig {
    IndicatorConfig {
        id: id.into(),
        source: "SELECT 1 AS value".into(),
        direction,
        weight: 1.0,
        floor: 1.0,
        relative_floor: 0.1,
        zero_when_absent: zero,
        top: 1,
        window: None,
    }
}

fn config() -> IncidentConfig {
    IncidentConfig {
        min_history: 2,
        lookback: 0,
        indicators: vec![
            indicator("errors", Direction::Up, true),
            indicator("edge", Direction::Up, false),
        ],
        ..IncidentConfig::default()
    }
}

fn row(entity: &str, value: f64, callee: Option<&str>) -> QueryRow {
    let mut labels = BTreeMap::from([
        ("entity".to_string(), entity.to_string()),
        ("indicator".to_string(), "x".to_string()),
    ]);
    if let Some(c) = callee {
        labels.insert("callee".into(), c.into());
    }
    QueryRow {
        labels,
        value,
        ..QueryRow::default()
    }
}

impl IncidentTracker {
    /// `observe` without call edges.
    fn observe_rows(
        &mut self,
        w: Window,
        rows: &[Vec<QueryRow>],
        notifications: &[Alert],
    ) -> Vec<IncidentRecord> {
        self.observe(w, Default::default(), rows, notifications)
    }
}

fn alert(name: &str, fp: &str, labels: &[(&str, &str)], firing: bool) -> Alert {
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("alertname".into(), name.into());
    Alert {
        rule_id: name.to_lowercase(),
        fingerprint: fp.into(),
        status: if firing {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        },
        labels: l,
        ..Alert::default()
    }
}

/// A healthy call graph gateway → a → b with steady errors and edge times.
fn healthy(b_edge: f64, b_errors: f64) -> Vec<Vec<QueryRow>> {
    vec![
        vec![row("a", 1.0, None), row("b", b_errors, None)],
        vec![row("gateway", 5.0, Some("a")), row("a", b_edge, Some("b"))],
    ]
}

#[test]
fn deviation_is_in_robust_units_with_floors() {
    let ind = indicator("x", Direction::Up, false);
    // Median 10, MAD 1 → scale 1.4826; floor 1 and 10 % of the median (1) are smaller.
    let (d, base) = baseline::deviation(&[9.0, 10.0, 11.0], 13.0, 3, &ind, None).unwrap();
    assert_eq!(base, 10.0);
    assert!((d - 3.0 / 1.4826).abs() < 1e-9, "{d}");
    // A flat baseline uses the floor, not a zero MAD.
    let (d, _) = baseline::deviation(&[0.0, 0.0, 0.0], 5.0, 3, &ind, None).unwrap();
    assert_eq!(d, 5.0);
    let down = indicator("x", Direction::Down, false);
    let (d, _) = baseline::deviation(&[1.0, 1.0], 0.0, 2, &down, None).unwrap();
    assert!(d > 0.0, "a drop is bad for a `down` indicator");
    assert!(baseline::deviation(&[1.0], 0.0, 2, &down, None).is_none());
    // A proportion of few trials moves by chance: its scale is at least the binomial one.
    let mut ratio = indicator("x", Direction::Down, false);
    ratio.floor = 0.01;
    ratio.relative_floor = 0.0;
    let hist = [0.5, 0.5, 0.5];
    let few = baseline::deviation(&hist, 0.0, 3, &ratio, Some(4.0))
        .unwrap()
        .0;
    let many = baseline::deviation(&hist, 0.0, 3, &ratio, Some(400.0))
        .unwrap()
        .0;
    assert!(
        (few - 2.0).abs() < 1e-9 && (many - 20.0).abs() < 1e-9,
        "{few} {many}"
    );
}

#[test]
fn the_slow_node_not_its_caller_is_the_suspect_and_the_path_leads_to_it() {
    let mut t = IncidentTracker::new("p", config());
    for i in 0..5 {
        assert!(t
            .observe_rows(window(i), &healthy(3.0, 0.0), &[])
            .is_empty());
    }
    // b's incoming edge slows by 500 ms and b logs errors; its caller a alerts.
    let page = alert("SlowCalls", "f1", &[("service", "a")], true);
    let out = t.observe_rows(window(5), &healthy(500.0, 12.0), &[page]);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.status, "opened");
    assert_eq!(r.opened_at, window(5).end.to_rfc3339());
    assert_eq!(r.verdict, "suspect");
    assert_eq!(r.suspects[0].service, "b", "{:?}", r.suspects);
    assert!(r.suspects[0].methods.contains_key("graph"));
    assert_eq!(r.propagation_path, vec!["gateway->a", "a->b"]);
    let first = r.first_anomaly.as_ref().unwrap();
    assert_eq!(first.time, window(5).start.to_rfc3339());
    let ev = &r.suspects[0].evidence[0];
    assert!(ev.deviation >= 3.0 && ev.value > ev.baseline, "{ev:?}");
    // The top suspect annotates the incident's alerts.
    let notes = t.annotations("f1");
    assert_eq!(notes.get("root_cause").map(String::as_str), Some("b"));
    assert_eq!(notes.get("incident_id"), Some(&r.id));
}

/// The trace-graph walk starts at the alerting service too, not only at the entries: an
/// entry's greedy walk reaches louder noise elsewhere (x), the alert's walk reaches the
/// fault below it (z), and the better-scoring end of the two takes the graph's bonus.
#[test]
fn the_walk_starts_at_the_alerting_service_as_well_as_at_the_entries() {
    let mut t = IncidentTracker::new("p", config());
    let rows = |x: f64, z: f64| {
        vec![
            vec![row("x", x, None), row("y", 0.0, None), row("z", z, None)],
            vec![
                row("gateway", 5.0, Some("x")),
                row("gateway", 5.0, Some("y")),
                row("y", 5.0, Some("z")),
            ],
        ]
    };
    for i in 0..5 {
        assert!(t.observe_rows(window(i), &rows(0.0, 0.0), &[]).is_empty());
    }
    let page = alert("Errors", "f1", &[("service", "y")], true);
    let out = t.observe_rows(window(5), &rows(10.0, 12.0), &[page]);
    let r = &out[0];
    assert_eq!(r.suspects[0].service, "z", "{:?}", r.suspects);
    assert!(r.suspects[0].methods.contains_key("graph"));
    assert!(
        !r.suspects[1].methods.contains_key("graph"),
        "{:?}",
        r.suspects
    );
    assert_eq!(r.propagation_path, vec!["gateway->y", "y->z"]);
}

#[test]
fn alerts_sharing_an_entity_join_one_incident_others_open_their_own() {
    let mut t = IncidentTracker::new("p", config());
    let a1 = alert("Errors", "f1", &[("service", "a")], true);
    let out = t.observe_rows(window(0), &[], &[a1]);
    let id = out[0].id.clone();
    let a2 = alert("Slow", "f2", &[("service", "a"), ("host", "h1")], true);
    let c = alert("Errors", "f3", &[("service", "c")], true);
    let out = t.observe_rows(window(1), &[], &[a2, c]);
    assert_eq!(out.len(), 2);
    let joined = out.iter().find(|r| r.id == id).expect("same incident");
    assert_eq!(joined.status, "updated");
    assert_eq!(joined.alerts.len(), 2);
    assert_eq!(joined.entities, vec!["host=h1", "service=a"]);
    let other = out.iter().find(|r| r.id != id).unwrap();
    assert_eq!(other.status, "opened");
    // Stable ids: the same input gives the same incidents.
    let mut again = IncidentTracker::new("p", config());
    let a1 = alert("Errors", "f1", &[("service", "a")], true);
    assert_eq!(again.observe_rows(window(0), &[], &[a1])[0].id, id);
}

/// Alerts of one incident overlap in time: a neighbour's alert (joined by a call edge) that
/// starts in the window in which the incident's every alert resolves opens an incident of
/// its own, whatever the order the window's notifications come in; an alert naming the
/// incident's own entities again joins it.
#[test]
fn a_neighbours_alert_starting_as_an_incidents_last_alert_resolves_opens_a_new_incident() {
    let mut t = IncidentTracker::new("p", config());
    let edges: std::collections::BTreeSet<(String, String)> =
        [("a".to_string(), "b".to_string())].into();
    let first = alert("Errors", "f1", &[("service", "a")], true);
    let old = t.observe(window(0), edges.clone(), &[], &[first])[0]
        .id
        .clone();
    let again = alert("Errors", "f3", &[("service", "a")], true);
    let resolved = alert("Errors", "f1", &[("service", "a")], false);
    let out = t.observe(window(1), edges.clone(), &[], &[again, resolved]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].id.as_str(), out[0].status),
        (old.as_str(), "updated")
    );
    let resolved = alert("Errors", "f3", &[("service", "a")], false);
    let new = alert("Slow", "f2", &[("service", "b")], true);
    let out = t.observe(window(2), edges, &[], &[new, resolved]);
    assert_eq!(out.len(), 2, "{out:?}");
    let closed = out.iter().find(|r| r.id == old).unwrap();
    assert_eq!(closed.status, "resolved");
    assert_eq!(closed.alerts.len(), 2);
    let opened = out.iter().find(|r| r.id != old).unwrap();
    assert_eq!(opened.status, "opened");
    assert_eq!(opened.opened_at, window(2).end.to_rfc3339());
    assert_eq!(opened.alerts[0].alertname, "Slow");
}

#[test]
fn an_incident_resolves_when_all_its_alerts_do_and_nothing_reopens_it() {
    let mut t = IncidentTracker::new("p", config());
    let a = alert("Errors", "f1", &[("service", "a")], true);
    t.observe_rows(window(0), &[], &[a]);
    let b = alert("Errors", "f1", &[("service", "a")], false);
    let out = t.observe_rows(window(1), &[], std::slice::from_ref(&b));
    assert_eq!(out[0].status, "resolved");
    assert!(out[0].resolved_at.is_some());
    let events: Vec<&str> = out[0].timeline.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, vec!["alert_firing", "alert_resolved"]);
    // A late resolution of an alert no incident holds opens nothing.
    assert!(t.observe_rows(window(2), &[], &[b]).is_empty());
}

#[test]
fn a_generic_alert_is_folded_into_the_more_specific_one() {
    let mut t = IncidentTracker::new("p", config());
    let generic = alert("ErrorBurst", "g", &[("service", "web")], true);
    let specific = alert(
        "ErrorTemplateBurst",
        "s",
        &[("service", "web"), ("template_id", "t1")],
        true,
    );
    let out = t.observe_rows(window(0), &[], &[generic, specific]);
    assert_eq!(out.len(), 1, "one incident");
    let g = out[0].alerts.iter().find(|m| m.fingerprint == "g").unwrap();
    let s = out[0].alerts.iter().find(|m| m.fingerprint == "s").unwrap();
    assert_eq!(g.folded_into.as_deref(), Some("s"));
    assert_eq!(s.folded_into, None);
}

#[test]
fn without_a_clear_leader_the_ranking_abstains() {
    let mut t = IncidentTracker::new("p", config());
    for i in 0..4 {
        t.observe_rows(
            window(i),
            &[vec![row("a", 0.0, None), row("b", 0.0, None)]],
            &[],
        );
    }
    let page = alert("Errors", "f", &[("service", "a")], true);
    let both = [vec![row("a", 10.0, None), row("b", 10.0, None)]];
    let r = &t.observe_rows(window(4), &both, &[page])[0];
    assert_eq!(r.verdict, "unknown");
    assert_eq!(r.suspects.len(), 2, "the evidence is still listed");
}

#[test]
fn baselines_of_an_open_incidents_entities_stay_frozen() {
    let mut t = IncidentTracker::new("p", config());
    for i in 0..4 {
        t.observe_rows(window(i), &[vec![row("a", 0.0, None)]], &[]);
    }
    let page = alert("Errors", "f", &[("service", "a")], true);
    t.observe_rows(window(4), &[vec![row("a", 20.0, None)]], &[page]);
    // Ten more windows of the fault: still 20 robust units, the baseline did not learn it.
    for i in 5..15 {
        t.observe_rows(window(i), &[vec![row("a", 20.0, None)]], &[]);
    }
    let rows = [vec![row("a", 20.0, None)]];
    let obs = t
        .baselines
        .observe(&t.config, &rows, &["a".to_string()].into());
    assert_eq!(obs[0].deviation, 20.0);
}

#[test]
fn state_is_bounded_by_max_series() {
    let mut cfg = config();
    cfg.max_series = 10;
    let mut t = IncidentTracker::new("p", cfg);
    for i in 0..20 {
        let rows = [(0..5)
            .map(|j| row(&format!("s{i}-{j}"), 1.0, None))
            .collect()];
        t.observe_rows(window(i), &rows, &[]);
        assert!(t.baselines.series_count() <= 10);
    }
}

#[test]
fn alerts_on_services_a_call_edge_joins_are_one_incident_whatever_their_order() {
    let mut t = IncidentTracker::new("p", config());
    let edges: std::collections::BTreeSet<(String, String)> =
        [("gateway".to_string(), "model".to_string())].into();
    // The gateway's alert arrives before the one naming the model's host and service.
    let gpu = alert("GpuMemory", "g", &[("host", "node-7")], true);
    let gateway = alert("Errors", "e", &[("service", "gateway")], true);
    let oom = alert(
        "Oom",
        "o",
        &[("service", "model"), ("host", "node-7")],
        true,
    );
    let out = t.observe(window(0), edges.clone(), &[], &[gpu, gateway, oom]);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].alerts.len(), 3);
    // Without the edge they stay apart.
    let mut t = IncidentTracker::new("p", config());
    let gateway = alert("Errors", "e", &[("service", "gateway")], true);
    let oom = alert("Oom", "o", &[("service", "model")], true);
    assert_eq!(t.observe_rows(window(0), &[], &[gateway, oom]).len(), 2);
}

#[test]
fn call_edges_come_from_spans_whose_parent_is_in_another_service() {
    use crate::model::{Attributes, Resource, SpanRecord, StatusCode};
    let in_trace = |trace: &str, id: &str, parent: Option<&str>, service: &str| SpanRecord {
        start_time: EventTime(0),
        end_time: EventTime(1_000_000),
        trace_id: crate::model::TraceId::from_label(trace),
        span_id: crate::model::SpanId::from_label(id),
        parent_span_id: parent.map(crate::model::SpanId::from_label),
        name: "op".into(),
        kind: "server",
        status: StatusCode::Unset,
        status_message: None,
        resource: std::sync::Arc::new(Resource::from_attributes(Attributes::from([(
            "service.name".to_string(),
            service.to_string(),
        )]))),
        scope: None,
        attributes: Attributes::new(),
        event_count: 0,
    };
    let span = |id, parent, service| in_trace("t1", id, parent, service);
    let spans = [
        span("a", None, "gateway"),
        span("b", Some("a"), "gateway"),
        span("c", Some("b"), "model"),
        // A parent id of another trace, and a parent not in the window: no edge.
        in_trace("t2", "d", Some("a"), "store"),
        span("e", Some("gone"), "cache"),
    ];
    let batch = crate::tables::spans_batch(&spans.iter().collect::<Vec<_>>());
    let edges = graph::edges_of(&batch);
    assert_eq!(edges, [("gateway".to_string(), "model".to_string())].into());
}

#[test]
fn the_onset_is_the_start_of_the_latest_anomalous_run_not_an_earlier_blip() {
    let mut cfg = config();
    cfg.lookback = 6;
    let mut t = IncidentTracker::new("p", cfg);
    let errors = |n: f64| [vec![row("a", n, None)]];
    // A baseline of zeros, a one-window blip, quiet again, then the fault from window 6.
    for (i, n) in [0.0, 0.0, 0.0, 9.0, 0.0, 0.0].into_iter().enumerate() {
        t.observe_rows(window(i as i64), &errors(n), &[]);
    }
    t.observe_rows(window(6), &errors(12.0), &[]);
    let page = alert("Errors", "f", &[("service", "a")], true);
    let r = &t.observe_rows(window(7), &errors(12.0), &[page])[0];
    let first = r.first_anomaly.as_ref().expect("an onset");
    assert_eq!(first.time, window(6).start.to_rfc3339());
    assert_eq!(r.suspects[0].onset.as_deref(), Some(first.time.as_str()));
}

/// A caller drifting before the fault is not where it started: the first anomalous point
/// is the suspect's onset, though the caller is on the path and its run began earlier.
#[test]
fn a_caller_anomalous_before_the_suspect_is_not_the_first_anomaly() {
    let mut cfg = config();
    cfg.lookback = 6;
    let mut t = IncidentTracker::new("p", cfg);
    let with_a_errors = |rows: Vec<Vec<QueryRow>>, n: f64| {
        let mut rows = rows;
        rows[0][0] = row("a", n, None);
        rows
    };
    for i in 0..3 {
        t.observe_rows(window(i), &healthy(3.0, 0.0), &[]);
    }
    for i in 3..5 {
        t.observe_rows(window(i), &with_a_errors(healthy(3.0, 0.0), 6.0), &[]);
    }
    let page = alert("Errors", "f", &[("service", "a")], true);
    let fault = with_a_errors(healthy(500.0, 12.0), 6.0);
    let r = &t.observe_rows(window(5), &fault, &[page])[0];
    assert_eq!(r.suspects[0].service, "b", "{:?}", r.suspects);
    assert_eq!(r.propagation_path, vec!["gateway->a", "a->b"]);
    let a = r
        .suspects
        .iter()
        .find(|s| s.service == "a")
        .expect("a ranked");
    assert_eq!(
        a.onset,
        Some(window(3).start.to_rfc3339()),
        "a's run began first"
    );
    let first = r.first_anomaly.as_ref().expect("an onset");
    assert_eq!(
        (first.entity.as_str(), first.time.clone()),
        ("b", window(5).start.to_rfc3339())
    );
}

#[test]
fn an_incidents_timeline_keeps_its_latest_entries_only() {
    let mut t = IncidentTracker::new("p", config());
    let mut last = Vec::new();
    for i in 0..(group::MAX_TIMELINE as i64 + 20) {
        // One alert flapping: firing, resolved by another firing alert keeping it open.
        let keep = alert("Keep", "k", &[("service", "a")], true);
        let flap = alert("Flap", "f", &[("service", "a")], i % 2 == 0);
        last = t.observe_rows(window(i), &[], &[keep, flap]);
    }
    let r = last.last().expect("the incident changed");
    assert_eq!(r.timeline.len(), group::MAX_TIMELINE);
    assert_eq!(
        r.timeline.last().unwrap().time,
        window(group::MAX_TIMELINE as i64 + 19).end.to_rfc3339()
    );
}

#[test]
fn a_blip_that_passed_before_the_incident_opened_is_not_its_top_suspect() {
    let mut cfg = config();
    cfg.lookback = 2;
    let mut t = IncidentTracker::new("p", cfg);
    let errors = |a: f64, b: f64| [vec![row("a", a, None), row("b", b, None)]];
    for i in 0..4 {
        t.observe_rows(window(i), &errors(0.0, 0.0), &[]);
    }
    // `a` spikes hard and passes; a window later `b` goes bad, less, and stays bad.
    t.observe_rows(window(4), &errors(30.0, 0.0), &[]);
    t.observe_rows(window(5), &errors(0.0, 0.0), &[]);
    let page = alert("Errors", "f", &[("service", "b")], true);
    let r = &t.observe_rows(window(6), &errors(0.0, 8.0), std::slice::from_ref(&page))[0];
    let names: Vec<&str> = r.suspects.iter().map(|s| s.entity.as_str()).collect();
    assert_eq!(
        names,
        ["b"],
        "the look-back's blip is no suspect: {names:?}"
    );
    // Once `a` is bad again while the incident is open, its look-back counts too.
    let r = &t.observe_rows(window(7), &errors(10.0, 8.0), &[page])[0];
    let a = r
        .suspects
        .iter()
        .find(|s| s.entity == "a")
        .expect("a suspect");
    let b = r
        .suspects
        .iter()
        .find(|s| s.entity == "b")
        .expect("b suspect");
    assert!(a.score > b.score, "{} vs {}", a.score, b.score);
}
