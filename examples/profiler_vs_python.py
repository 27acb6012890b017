"""Python side of benches/profiler_vs_python.sh: ONNX Runtime's own Python loop.

    python profiler_vs_python.py loop MODEL [--calls N] [--rounds R]
        per-call cost of `InferenceSession.run` in a tight loop (median over rounds)
    python profiler_vs_python.py p50 MODEL --shape 1,3,320,320 [--threads T] [--max-time S]
        per-run latencies -> p50 and its distribution-free 95% CI (order statistics)
    python profiler_vs_python.py summary WORKDIR
        reads the JSON files the script wrote and prints the figures for BENCHMARKS.md

Prints one JSON object on stdout. Needs onnxruntime and numpy.
"""

import json
import math
import sys
import time


def median_ci(sorted_xs, confidence=0.95):
    """Distribution-free CI of the median: [x(k), x(n-k+1)], largest k with
    coverage 1 - 2 P(B <= k-1) >= confidence, B ~ Binomial(n, 1/2) (Conover 1999, 3.2)."""
    n = len(sorted_xs)
    tail = (1 - confidence) / 2
    cdf, best = 0.0, None
    for i in range((n + 1) // 2):
        cdf += math.comb(n, i) / 2.0**n
        if cdf > tail:
            break
        best = i + 1
    if best is None:
        return sorted_xs[0], sorted_xs[-1]
    return sorted_xs[best - 1], sorted_xs[n - best]


def quantile(sorted_xs, p):
    h = (len(sorted_xs) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (h - lo) * (sorted_xs[hi] - sorted_xs[lo])


def session(model, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]), ort.__version__


def arg(name, default, cast=str):
    if name in sys.argv:
        return cast(sys.argv[sys.argv.index(name) + 1])
    return default


def loop(model):
    import numpy as np

    calls = arg("--calls", 20000, int)
    rounds = arg("--rounds", 7, int)
    s, version = session(model, 1)
    name = s.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).random((1, 16), dtype=np.float32)}
    for _ in range(1000):
        s.run(None, feed)
    per_call = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            s.run(None, feed)
        per_call.append((time.perf_counter() - t) / calls)
    per_call.sort()
    return {
        "onnxruntime_version": version,
        "python_run_per_call_s": per_call[len(per_call) // 2],
        "calls_per_round": calls,
        "rounds": rounds,
    }


def p50(model):
    import numpy as np

    shape = [int(x) for x in arg("--shape", "1,3,320,320").split(",")]
    threads = arg("--threads", 1, int)
    max_time = arg("--max-time", 10.0, float)
    min_runs = arg("--min-runs", 20, int)
    s, version = session(model, threads)
    name = s.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(5):
        s.run(None, feed)
    xs, spent = [], 0.0
    while spent < max_time or len(xs) < min_runs:
        t = time.perf_counter()
        s.run(None, feed)
        d = time.perf_counter() - t
        xs.append(d)
        spent += d
    xs.sort()
    lo, hi = median_ci(xs)
    med = quantile(xs, 0.5)
    return {
        "onnxruntime_version": version,
        "threads": threads,
        "shape": shape,
        "iterations": len(xs),
        "p50_s": med,
        "p50_ci_low_s": lo,
        "p50_ci_high_s": hi,
        "p50_ci_rel": (hi - lo) / 2 / med,
    }


def summary(work):
    def load(name):
        with open(f"{work}/{name}") as f:
            return json.load(f)

    rust = load("overhead_rust.json")
    py = load("overhead_python.json")
    py_overhead = py["python_run_per_call_s"] - rust["bare_run_bound_per_call_s"]
    out = {
        "ort_bare_run_bound_per_call_us": rust["bare_run_bound_per_call_s"] * 1e6,
        "edgepack_harness_overhead_per_call_us": rust["harness_overhead_per_call_s"] * 1e6,
        "python_run_per_call_us": py["python_run_per_call_s"] * 1e6,
        "python_overhead_per_call_us": py_overhead * 1e6,
        "overhead_ratio_vs_python_overhead": rust["harness_overhead_per_call_s"] / py_overhead
        if py_overhead > 0
        else None,
        "overhead_ratio_vs_python_per_call": rust["harness_overhead_per_call_s"]
        / py["python_run_per_call_s"],
    }
    import glob

    rounds = len(glob.glob(f"{work}/det_python_*.json"))
    e_runs = [load(f"det_edgepack_{r}.json")["configs"][0]["latency"] for r in range(1, rounds + 1)]
    p_runs = [load(f"det_python_{r}.json") for r in range(1, rounds + 1)]

    def med(xs):
        xs = sorted(xs)
        return quantile(xs, 0.5)

    e_p50 = med([x["p50_s"] for x in e_runs])
    p_p50 = med([x["p50_s"] for x in p_runs])

    def spread(runs, center):
        # half the range of the per-round p50s, relative: the drift between rounds
        xs = [x["p50_s"] for x in runs]
        return (max(xs) - min(xs)) / 2 / center

    e_ci = med([x["p50_ci_rel"] for x in e_runs])
    p_ci = med([x["p50_ci_rel"] for x in p_runs])
    diff = abs(e_p50 - p_p50) / p_p50
    noise = max(e_ci + p_ci, spread(e_runs, e_p50) + spread(p_runs, p_p50))
    out.update(
        {
            "det_rounds": rounds,
            "det_edgepack_p50_ms_per_round": [x["p50_s"] * 1e3 for x in e_runs],
            "det_python_p50_ms_per_round": [x["p50_s"] * 1e3 for x in p_runs],
            "det_edgepack_p50_ms": e_p50 * 1e3,
            "det_python_p50_ms": p_p50 * 1e3,
            "det_edgepack_ci_rel_pct_median": e_ci * 100,
            "det_python_ci_rel_pct_median": p_ci * 100,
            "det_p50_rel_diff_pct": diff * 100,
            "det_noise_pct": noise * 100,
            "det_agree_within_noise": diff <= noise,
            "python_onnxruntime_version": p_runs[0]["onnxruntime_version"],
            "edgepack_onnxruntime_version": rust["onnxruntime_version"],
        }
    )
    sweep = load("sweep_quick.json")
    with open(f"{work}/sweep_seconds.txt") as f:
        out["quick_sweep_wall_s"] = float(f.read().strip())
    cis = [
        (c["id"], c["latency"]["p50_ci_rel"] * 100 if c.get("latency") else None, c["status"])
        for c in sweep["configs"]
    ]
    out["quick_sweep_configs"] = len(cis)
    out["quick_sweep_max_ci_rel_pct"] = max((c[1] for c in cis if c[1] is not None), default=None)
    out["quick_sweep_all_within_2pct"] = all(c[1] is not None and c[1] <= 2.0 for c in cis)
    out["quick_sweep_ci_rel_pct"] = {c[0]: c[1] for c in cis}
    out["quick_sweep_p50_ms"] = {
        c["id"]: c["latency"]["p50_s"] * 1e3 for c in sweep["configs"] if c.get("latency")
    }
    out["host"] = sweep["host"]["cpu_model"] + f" ({sweep['host']['logical_cores']} logical cores)"
    try:
        with open(f"{work}/sweep_seconds_1round.txt") as f:
            out["quick_sweep_wall_s_one_round"] = float(f.read().strip())
        out["quick_sweep_wall_ratio_rounds_vs_one"] = (
            out["quick_sweep_wall_s"] / out["quick_sweep_wall_s_one_round"]
        )
    except FileNotFoundError:
        pass
    out.update(all_cores(work, load))
    return out


def all_cores(work, load):
    """Part 4: processes at threads = cores, both sides, and the 3-round profile."""
    import glob

    procs = len(glob.glob(f"{work}/all_python_*.json"))
    if procs == 0:
        return {}
    py = [load(f"all_python_{r}.json")["p50_s"] for r in range(1, procs + 1)]
    ep = [
        load(f"all_edgepack_{r}.json")["configs"][0]["latency"]["p50_s"]
        for r in range(1, procs + 1)
    ]
    ep_ci = [
        load(f"all_edgepack_{r}.json")["configs"][0]["latency"]["p50_ci_rel"]
        for r in range(1, procs + 1)
    ]
    rounds = load("all_rounds.json")["configs"][0]
    lat = rounds["latency"]
    both = py + ep
    lo, hi = lat["p50_ci_low_s"], lat["p50_ci_high_s"]
    return {
        "all_cores_threads": rounds["threads"],
        "all_cores_processes_per_side": procs,
        "all_cores_python_p50_ms": [x * 1e3 for x in py],
        "all_cores_edgepack_single_round_p50_ms": [x * 1e3 for x in ep],
        "all_cores_edgepack_single_round_ci_rel_pct": [x * 100 for x in ep_ci],
        "all_cores_python_max_over_min": max(py) / min(py),
        "all_cores_edgepack_max_over_min": max(ep) / min(ep),
        "all_cores_rounds_profile_p50_ms": lat["p50_s"] * 1e3,
        "all_cores_rounds_profile_round_p50_ms": [r["p50_s"] * 1e3 for r in lat.get("rounds", [])],
        "all_cores_rounds_profile_ci_ms": [lo * 1e3, hi * 1e3],
        "all_cores_rounds_profile_ci_rel_pct": lat["p50_ci_rel"] * 100,
        "all_cores_rounds_profile_modes_ms": [m["p50_s"] * 1e3 for m in lat.get("modes", [])],
        "all_cores_rounds_profile_flagged_all_cores": rounds.get("uses_all_cores", False),
        # Share of the single-process p50s (both tools) inside the 3-round interval.
        "all_cores_share_of_processes_inside_rounds_ci": sum(lo <= x <= hi for x in both)
        / len(both),
    }


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, target = sys.argv[1], sys.argv[2]
    result = {"loop": loop, "p50": p50, "summary": summary}[cmd](target)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
