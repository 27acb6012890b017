"""Helper of benches/predict_accuracy.sh (standard library only).

row NAME THREADS BATCH PRED.json PROFILE.json [HOST_PROFILE.json HOST_COMPUTE DEVICE_COMPUTE]
                                               -> one JSON line: predicted and measured (and
                                                  the scalar method's prediction from the
                                                  host's measurement, when given)
summary ROWS.jsonl                             -> the table and the error figures
"""
import json
import os
import statistics
import sys


def config(prof, threads, batch):
    conf = None
    for c in prof["configs"]:
        if c["status"] != "ok" or c["threads"] != threads:
            continue
        if (c.get("batch") or 1) == batch:
            conf = c
    return conf


def peak_rss(conf):
    mem = conf["memory"]
    return max(mem["peak_rss_bytes"], mem.get("peak_rss_session_create_bytes") or 0)


def row(name, threads, batch, pred_path, prof_path, host_prof_path="", host_compute="",
        device_compute=""):
    pred = json.load(open(pred_path))
    prof = json.load(open(prof_path))
    threads, batch = int(threads), int(batch)
    conf = config(prof, threads, batch)
    if conf is None:
        return
    out = {
        "case": f"{name} t{threads} b{batch}",
        "pred_p50_s": pred["p50_s"],
        "meas_p50_s": conf["latency"]["p50_s"],
        # Each process's own p50 and the regimes they fell in (rounds whose medians differ
        # by 15% or more: profile::rounds::MODE_GAP_REL).
        "meas_rounds_p50_s": [r["p50_s"] for r in conf["latency"].get("rounds", [])],
        "meas_modes": len(conf["latency"].get("modes") or []) or 1,
        "pred_rss": pred["peak_rss_bytes"],
        "meas_rss": peak_rss(conf),
        "by_kernel": pred["time_by_kernel_s"],
        "fallbacks": pred["fallbacks"],
    }
    # The scalar method: this host's measured p50 x host compute / device compute, and
    # this host's measured peak RSS as is (what bundle does without a device profile).
    if host_prof_path and host_compute and device_compute:
        try:
            host = config(json.load(open(host_prof_path)), threads, batch)
        except OSError:
            host = None
        if host is not None:
            out["scalar_p50_s"] = (host["latency"]["p50_s"] * float(host_compute)
                                   / float(device_compute))
            out["scalar_rss"] = peak_rss(host)
    print(json.dumps(out))


def memory_summary(rows):
    """Peak RSS only (MEMORY_ONLY=1): for profiles measured where timings mean nothing,
    such as an emulated board (benches/arm_memory.sh)."""
    print(f"{'case':<34} {'pred MiB':>8} {'meas MiB':>8} {'err':>7}")
    errs = []
    for r in rows:
        e = r["pred_rss"] / r["meas_rss"] - 1
        errs.append(e)
        print(f"{r['case']:<34} {r['pred_rss']/2**20:>8.1f} {r['meas_rss']/2**20:>8.1f} {e:>+7.1%}")
    n = len(rows)
    print()
    print(f"cases: {n} (timings not scored)")
    print(f"peak RSS: median |error| {statistics.median(abs(e) for e in errs):.1%}, "
          f"within ±10%: {sum(abs(e) <= 0.10 for e in errs) / n:.0%} (bar: 90%)")
    if n >= 2:
        mq = statistics.quantiles([r["meas_rss"] / r["pred_rss"] for r in rows], n=20)
        print(f"measured/predicted peak RSS: 5th pct {mq[0]:.2f}, 95th pct {mq[-1]:.2f}")


def thread_breakdown(rows, lat_err):
    """The latency score per thread count, and the cases where more threads measured
    slower than fewer threads on the same model and batch. No device profile predicts a
    slowdown from adding a thread; on a 2-vCPU VM it happens from run to run (BENCHMARKS.md,
    "Sizing: the probe in three rounds"). These are listed, and the score without them is
    printed as a diagnostic beside the bar's figure, never instead of it."""
    parsed = []
    for r, e in zip(rows, lat_err):
        parts = r["case"].rsplit(" ", 2)
        if len(parts) != 3 or not parts[1].startswith("t") or not parts[2].startswith("b"):
            return
        parsed.append((parts[0], int(parts[1][1:]), parts[2], r["meas_p50_s"], e))
    counts = sorted({t for _, t, _, _, _ in parsed})
    if len(counts) < 2:
        return
    cells = []
    for t in counts:
        errs = [e for _, tt, _, _, e in parsed if tt == t]
        cells.append(f"t{t} {sum(abs(e) <= 0.2 for e in errs)}/{len(errs)}")
    print(f"  within ±20% by threads: {', '.join(cells)}")
    fewest = {}
    for name, t, b, meas, _ in parsed:
        key = (name, b)
        if key not in fewest or t < fewest[key][0]:
            fewest[key] = (t, meas)
    def is_slower(name, t, b, meas):
        return fewest[(name, b)][0] < t and meas >= fewest[(name, b)][1]

    slower = [p for p in parsed if is_slower(*p[:4])]
    if not slower:
        return
    print(f"  measured slower with more threads than with t{counts[0]} (no probe predicts that): "
          + ", ".join(f"{name} t{t} {b} ({meas / fewest[(name, b)][1]:.2f}x)"
                      for name, t, b, meas, _ in slower))
    rest = [p[4] for p in parsed if not is_slower(*p[:4])]
    print(f"  diagnostic only, not the bar: without those {len(slower)}, "
          f"{sum(abs(e) <= 0.2 for e in rest) / len(rest):.0%} of {len(rest)} within ±20%")


def summary(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        print("no cases")
        return
    if os.environ.get("MEMORY_ONLY") == "1":
        memory_summary(rows)
        return
    print(f"{'case':<34} {'pred ms':>9} {'meas ms':>9} {'err':>7}  {'pred MiB':>8} {'meas MiB':>8} {'err':>7}")
    lat_err, mem_err, ratio = [], [], []
    for r in rows:
        le = r["pred_p50_s"] / r["meas_p50_s"] - 1
        me = r["pred_rss"] / r["meas_rss"] - 1
        lat_err.append(le)
        mem_err.append(me)
        ratio.append(r["meas_p50_s"] / r["pred_p50_s"])
        modes = "~" if r.get("meas_modes", 1) > 1 else " "
        print(f"{r['case']:<34} {r['pred_p50_s']*1e3:>9.3f} {r['meas_p50_s']*1e3:>9.3f}{modes}{le:>+7.1%}  "
              f"{r['pred_rss']/2**20:>8.1f} {r['meas_rss']/2**20:>8.1f} {me:>+7.1%}")
    n = len(rows)
    several = [r for r in rows if r.get("meas_modes", 1) > 1]
    if several:
        print(f"~ measured in several regimes: the processes' p50s split by 15% or more "
              f"({len(several)} of {n} cases; the pooled p50 is scored)")
    within = lambda errs, tol: sum(abs(e) <= tol for e in errs) / n
    print()
    print(f"cases: {n}")
    print(f"latency: median |error| {statistics.median(abs(e) for e in lat_err):.1%}, "
          f"within ±20%: {within(lat_err, 0.20):.0%} (bar: 80%)")
    print(f"peak RSS: median |error| {statistics.median(abs(e) for e in mem_err):.1%}, "
          f"within ±10%: {within(mem_err, 0.10):.0%} (bar: 90%)")
    thread_breakdown(rows, lat_err)
    # The typical process: the median of the processes' own p50s, a diagnostic beside the
    # bar's pooled figure (a pooled median moves with how many runs each regime's
    # processes happened to make).
    typical = [r for r in rows if r.get("meas_rounds_p50_s")]
    if several and typical:
        te = [r["pred_p50_s"] / statistics.median(r["meas_rounds_p50_s"]) - 1 for r in typical]
        print(f"  diagnostic only, not the bar: against the median process's p50, "
              f"{sum(abs(e) <= 0.2 for e in te) / len(te):.0%} of {len(te)} within ±20%")
    q = statistics.quantiles(ratio, n=20) if n >= 2 else [ratio[0]] * 19
    mq = statistics.quantiles([r["meas_rss"] / r["pred_rss"] for r in rows], n=20) if n >= 2 else [1.0] * 19
    print(f"measured/predicted p50: 5th pct {q[0]:.2f}, 95th pct {q[-1]:.2f}; "
          f"peak RSS: 5th {mq[0]:.2f}, 95th {mq[-1]:.2f}")
    scalar = [r for r in rows if "scalar_p50_s" in r]
    if scalar:
        sl = [r["scalar_p50_s"] / r["meas_p50_s"] - 1 for r in scalar]
        sm = [r["scalar_rss"] / r["meas_rss"] - 1 for r in scalar]
        ns = len(scalar)
        print(f"scalar method on the same {ns} cases (host p50 x host_compute / device_compute; "
              "host peak RSS):")
        print(f"  latency: median |error| {statistics.median(abs(e) for e in sl):.1%}, "
              f"within ±20%: {sum(abs(e) <= 0.2 for e in sl) / ns:.0%}")
        print(f"  peak RSS: median |error| {statistics.median(abs(e) for e in sm):.1%}, "
              f"within ±10%: {sum(abs(e) <= 0.1 for e in sm) / ns:.0%}")
    else:
        print("scalar method (host p50 x host_compute / target_compute): on the host it was "
              "measured on the ratio is 1.0, so it is exact by construction here; its error "
              "only shows on a second device (predict-only mode with HOST_PROFILES)")
    # Where the error comes from: the predicted share of each kernel class in the cases
    # beyond ±20%, against the cases within.
    def shares(rs):
        acc = {}
        for r in rs:
            tot = sum(r["by_kernel"].values()) or 1
            for k, v in r["by_kernel"].items():
                acc[k] = acc.get(k, 0) + v / tot / len(rs)
        return acc
    bad = [r for r, e in zip(rows, lat_err) if abs(e) > 0.20]
    good = [r for r, e in zip(rows, lat_err) if abs(e) <= 0.20]
    if bad:
        sb, sg = shares(bad), shares(good) if good else {}
        print("predicted time share by kernel: missed cases vs cases within ±20%")
        for k in sorted(sb, key=lambda k: -sb[k])[:8]:
            print(f"  {k:<24} {sb[k]:>6.1%} vs {sg.get(k, 0):>6.1%}")
        print(f"  (of {len(bad)} missed: {sum(1 for e in lat_err if e < -0.20)} under-predicted, "
              f"{sum(1 for e in lat_err if e > 0.20)} over-predicted)")
    by_class(rows)
    fb = sorted({f for r in rows for f in r["fallbacks"]})
    if fb:
        print("fallbacks used:")
        for f in fb:
            print(f"  {f}")


def solve(a, b):
    """Solve the square system a x = b by Gaussian elimination with partial pivoting."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        if abs(m[c][c]) < 1e-300:
            continue
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] if abs(m[i][i]) > 1e-300 else 1.0 for i in range(n)]


def by_class(rows, ridge=0.05):
    """Which kernel classes the latency error comes from.

    Fits one factor per kernel class (class/dtype as the cost model names it; the run
    overhead is the remainder of p50 over the kernels' sum): measured_i ~ sum_c f_c x
    predicted_ic, each case weighted by 1/measured_i (relative error, so small models
    count as much as large ones), with a ridge term pulling each f_c towards 1 (a class
    the cases cannot tell apart keeps its prediction). Ridge regression: Hoerl & Kennard,
    Technometrics 12(1), 1970. f_c > 1: the class is under-predicted; < 1: over-predicted.
    "pred/meas" is the class's predicted time over the measured p50, averaged over cases;
    "explains" the mean of |f_c - 1| x predicted_ic / measured_i: the share of the
    measured time the class's misprediction accounts for.
    """
    classes = sorted({k for r in rows for k in r["by_kernel"]} | {"run overhead"})
    def parts(r):
        p = dict(r["by_kernel"])
        p["run overhead"] = max(r["pred_p50_s"] - sum(r["by_kernel"].values()), 0.0)
        return [p.get(c, 0.0) / r["meas_p50_s"] for c in classes]
    x = [parts(r) for r in rows]
    n = len(classes)
    # Normal equations of min sum_i (1 - x_i . f)^2 + ridge * n_rows * sum_c (f_c - 1)^2.
    lam = ridge * len(rows)
    # Factors are time multipliers: never negative. Active set: a class whose factor
    # comes out negative is held at 0 and the rest refitted (Lawson & Hanson's NNLS idea,
    # in its simplest form).
    zero = set()
    while True:
        free = [j for j in range(n) if j not in zero]
        a = [[sum(xi[j] * xi[k] for xi in x) + (lam if j == k else 0.0) for k in free]
             for j in free]
        b = [sum(xi[j] for xi in x) + lam for j in free]
        sol = solve(a, b)
        f = [0.0] * n
        for j, v in zip(free, sol):
            f[j] = v
        neg = [j for j in free if f[j] < 0]
        if not neg:
            break
        zero.update(neg)
    share = [sum(xi[j] for xi in x) / len(x) for j in range(n)]
    explains = [sum(abs(f[j] - 1) * xi[j] for xi in x) / len(x) for j in range(n)]
    fitted = [sum(fj * xij for fj, xij in zip(f, xi)) for xi in x]
    after = sum(abs(v - 1) <= 0.2 for v in fitted) / len(fitted)
    print("latency error by kernel class (least-squares factor per class, measured ~ "
          "sum factor x predicted; >1: under-predicted):")
    print(f"  {'class':<24} {'factor':>7} {'pred/meas':>10} {'explains':>9}")
    for j in sorted(range(n), key=lambda j: -explains[j]):
        if share[j] < 1e-4:
            continue
        print(f"  {classes[j]:<24} {f[j]:>7.2f} {share[j]:>10.1%} {explains[j]:>9.1%}")
    print(f"  (refitted with these factors, in sample, {after:.0%} of the cases would be "
          "within ±20%: what a per-class correction could buy at most is about this)")


def drift(name, start_path, end_path):
    """The host's drift over the run: the same case at 1 thread profiled right after the
    probe and after the last case. Both p50s pool their processes; each process's p50 is
    listed so a regime change shows as such."""
    def p50s(path):
        conf = json.load(open(path))["configs"][0]
        return conf["latency"]["p50_s"], [r["p50_s"] for r in conf["latency"].get("rounds", [])]
    (a, ar), (b, br) = p50s(start_path), p50s(end_path)
    ms = lambda xs: ", ".join(f"{x * 1e3:.3f}" for x in xs)
    print(f"host drift ({name}, 1 thread): p50 {a * 1e3:.3f} ms after the probe "
          f"(processes {ms(ar)}), {b * 1e3:.3f} ms after the last case (processes {ms(br)}): "
          f"end/start {b / a:.2f}. A ratio away from 1 is host speed the probe did not see, "
          "and it moves every case's latency error by about as much.")


if __name__ == "__main__":
    {"row": row, "summary": summary, "drift": drift}[sys.argv[1]](*sys.argv[2:])
