"""Scores faultline's incidents on the Nezha TrainTicket cases (see scripts/nezha-eval).

For each case: the first incident (by opened_at, then first appearance) whose opened_at is
at or after the injection time; its last record's suspects, in rank order, give the ranking.
Prints AS@1/3/5 overall and per fault type against a random ranker, the abstention rate,
the onset error, the time from the first alert to a ranking, and the state bytes. Needs
labels.json (ground truth) next to cases.json.
"""
import json
import os
import sys
from collections import defaultdict
from datetime import datetime


def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac, tz = rest[: rest.index("+")], rest[rest.index("+"):]
        s = f"{head}.{frac[:6]}{tz}"
    return datetime.fromisoformat(s).timestamp()


def ranking(out_dir, inject):
    path = os.path.join(out_dir, "incidents.jsonl")
    if not os.path.exists(path):
        return None
    last, order = {}, []
    for line in open(path):
        r = json.loads(line)
        if r["id"] not in last:
            order.append(r["id"])
        last[r["id"]] = r
    firsts = [i for i in order if ts(last[i]["opened_at"]) >= inject]
    if not firsts:
        return None
    firsts.sort(key=lambda i: (ts(last[i]["opened_at"]), order.index(i)))
    return last[firsts[0]]


def main():
    data, out = sys.argv[1], sys.argv[2]
    labels = json.load(open(os.path.join(data, "labels.json")))
    n_random = len(labels["services_in_spans"])
    hits = defaultdict(lambda: [0, 0, 0, 0])
    rows = []
    for c in labels["cases"]:
        inc = ranking(os.path.join(out, c["case"]), c["inject_unix_s"])
        ranked = [s["service"] for s in inc["suspects"]] if inc else []
        truth = c["root_cause_service"]
        rank = ranked.index(truth) + 1 if truth in ranked else None
        onset = None
        if inc and inc.get("first_anomaly"):
            onset = ts(inc["first_anomaly"]["time"]) - c["inject_unix_s"]
        to_rank = ts(inc["opened_at"]) - c["inject_unix_s"] if inc else None
        rows.append((c["case"], c["fault_type"], truth, rank, inc and inc["verdict"],
                     ranked[:3], onset, to_rank, inc and inc["state_bytes"], c["inject_unix_s"]))
        for key in ("all", c["fault_type"]):
            h = hits[key]
            h[0] += 1
            for j, k in enumerate((1, 3, 5)):
                h[j + 1] += rank is not None and rank <= k
    for r in rows:
        print(f"{r[0]} {r[1]:15} {r[2]:32} rank={r[3]} verdict={r[4]} top={r[5]} "
              f"onset_err_s={r[6] if r[6] is None else round(r[6])} "
              f"opened_after_inject_s={r[7] if r[7] is None else round(r[7])} state_bytes={r[8]}")
    print()
    print(f"{'fault type':16} {'n':>3} {'AS@1':>6} {'AS@3':>6} {'AS@5':>6}")
    for key, h in sorted(hits.items(), key=lambda kv: kv[0] != "all"):
        n = h[0]
        print(f"{key:16} {n:>3} {h[1]/n:6.3f} {h[2]/n:6.3f} {h[3]/n:6.3f}")
    print(f"{'random ranker':16} {'':>3} {1/n_random:6.3f} {3/n_random:6.3f} {5/n_random:6.3f}"
          f"  (N = {n_random} services in spans)")
    verdicts = [r[4] for r in rows]
    print(f"abstained (verdict unknown): {sum(v == 'unknown' for v in verdicts)}/{len(rows)}; "
          f"no incident after injection: {sum(v is None for v in verdicts)}/{len(rows)}")
    onsets = sorted(abs(r[6]) for r in rows if r[6] is not None)
    if onsets:
        print(f"onset error |first_anomaly - inject| median {onsets[len(onsets)//2]:.0f} s")
        # first_anomaly is a window start (one-minute windows): compare windows.
        by_window = [int((r[9] + r[6]) // 60 - r[9] // 60) for r in rows if r[6] is not None]
        same = sum(d == 0 for d in by_window)
        early = sum(d < 0 for d in by_window)
        late = sum(d > 0 for d in by_window)
        print(f"onset window vs injection window: same {same}, earlier {early}, later {late}")
    opened = sorted(r[7] for r in rows if r[7] is not None)
    if opened:
        print(f"ranking available (incident opened) after injection: median {opened[len(opened)//2]:.0f} s")
    states = [r[8] for r in rows if r[8]]
    if states:
        print(f"ranking state: max {max(states)} bytes")


if __name__ == "__main__":
    main()
