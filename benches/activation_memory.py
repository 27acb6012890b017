#!/usr/bin/env python3
"""A run's memory against what the cost model says ONNX Runtime's planner holds.

Reads folders written by benches/predict_accuracy.sh (their *.t1.b*.pred.json, their
device.json, and the profiles there or in the folder named after a colon) and prints, per
case at one thread: the run's memory (peak RSS less the RSS after session creation), the
graph's inputs and outputs, the memory pattern's block, the live peak and the arena the
planner simulates (src/hardware/planner.rs), then how many runs each rule puts within 3
and 5 MiB:
  live:  live peak x the probed activation factor (the rule before 2026-12-07, run 16);
  arena: arena + inputs and outputs x (activation factor - 0.5) (the rule since).

  python3 benches/activation_memory.py OUT[:PROFILES] [OUT[:PROFILES] ...]
"""
import json
import os
import statistics
import sys

MIB = 2**20


def cases(out, profiles):
    factor = json.load(open(os.path.join(out, "device.json")))["memory"]["activation_factor"]
    for f in sorted(os.listdir(out)):
        if ".t1.b" not in f or not f.endswith(".pred.json"):
            continue
        name, rest = f.split(".t1.b", 1)
        batch = int(rest.split(".")[0])
        prof = os.path.join(profiles, name + ".profile.json")
        if not os.path.exists(prof):
            prof = os.path.join(out, name + ".profile.json")
        if not os.path.exists(prof):
            continue
        pred = json.load(open(os.path.join(out, f)))
        configs = [
            c for c in json.load(open(prof))["configs"]
            if c["status"] == "ok" and c["threads"] == 1 and c.get("batch") in (batch, None)
        ]
        if not configs:
            continue
        m = configs[0]["memory"]
        plan = pred["activation_plan"]
        yield {
            "case": f"{name} b{batch}",
            "run": (m["peak_rss_bytes"] - m["rss_after_session_bytes"]) / MIB,
            "io": plan["io_bytes"] / MIB,
            "pattern": plan["pattern_bytes"] / MIB,
            "live": plan["live_peak_bytes"] / MIB,
            "arena": plan["arena_touched_bytes"] / MIB,
            "factor": factor,
        }


def main(args):
    if not args:
        sys.exit(__doc__)
    rows = []
    for a in args:
        out, _, profiles = a.partition(":")
        for r in cases(out, profiles or out):
            r["where"] = os.path.basename(out.rstrip("/"))
            rows.append(r)
    print(f"{'folder':12s} {'case':30s} {'run':>6s} {'io':>5s} {'block':>6s} {'live':>6s} "
          f"{'arena':>6s} {'live-rule':>9s} {'arena-rule':>10s}  (MiB; rules: run - predicted)")
    errs = {"live": [], "arena": []}
    for r in rows:
        live = r["run"] - r["factor"] * r["live"]
        arena = r["run"] - (r["arena"] + max(r["factor"] - 0.5, 0.0) * r["io"])
        errs["live"].append(live)
        errs["arena"].append(arena)
        print(f"{r['where'][:12]:12s} {r['case'][:30]:30s} {r['run']:6.1f} {r['io']:5.1f} "
              f"{r['pattern']:6.1f} {r['live']:6.1f} {r['arena']:6.1f} {live:+9.1f} {arena:+10.1f}")
    for rule, e in errs.items():
        print(f"{rule:5s} rule: {len(e)} runs, within 3 MiB {sum(abs(x) <= 3 for x in e)}, "
              f"within 5 MiB {sum(abs(x) <= 5 for x in e)}, "
              f"median |run - predicted| {statistics.median(abs(x) for x in e):.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
