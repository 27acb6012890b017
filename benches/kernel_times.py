"""Where does a latency prediction go wrong, kernel by kernel? (issue 13; BENCHMARKS.md,
"Sizing: the classifier's kernels against ONNX Runtime's profiler").

Runs MODEL at level `all` through ONNX Runtime's own profiler (THREADS threads, WARMUP
runs then RUNS runs) and takes each node's median kernel time over the RUNS runs; asks
`edgepack predict` for the same shape on DEVICE.json; prints both summed per op type
(with the kernel classes the prediction used and the kernel counts). The profiler's own
overhead per kernel (it timestamps each one) is in the measured column, so compare the
per-op figures more than the sums; the p50 of a run without the profiler is printed too.

    P=~/.cache/edgepack/bench-tf-venv/bin/python   # onnxruntime, numpy
    $P benches/kernel_times.py target/release/edgepack DEVICE.json \\
        ~/.cache/edgepack/models/ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx x 1x3x48x192 [THREADS]
"""
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

WARMUP = 20
RUNS = 200


def measured(model, name, dims, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    feeds = {name: np.random.rand(*dims).astype(np.float32)}
    plain = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP):
        plain.run(None, feeds)
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        plain.run(None, feeds)
        times.append(time.perf_counter() - t)
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP + RUNS):
        sess.run(None, feeds)
    path = sess.end_profiling()
    events = json.load(open(path))
    os.remove(path)
    per_node = collections.defaultdict(list)
    op_of = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append(e["dur"] * 1e-6)
            op_of[e["name"]] = e["args"]["op_name"]
    by_op = collections.defaultdict(lambda: [0, 0.0])
    for node, ds in per_node.items():
        ds = ds[WARMUP:] if len(ds) > WARMUP else ds
        by_op[op_of[node]][0] += 1
        by_op[op_of[node]][1] += statistics.median(ds)
    return by_op, statistics.median(times)


def predicted(edgepack, device, model, shape, threads):
    out = subprocess.run([edgepack, "predict", model, "--device", device, "--threads",
                          str(threads), "--shape", shape, "--json"],
                         capture_output=True, text=True, check=True)
    p = json.loads(out.stdout)
    by_op = collections.defaultdict(lambda: [0, 0.0, set()])
    for k in p["kernels"]:
        op = k["op_type"]
        by_op[op][0] += 1
        by_op[op][1] += k["time_s"]
        by_op[op][2].add(k["kernel"])
    return by_op, p["p50_s"]


def main():
    ort.set_default_logger_severity(3)
    edgepack, device, model, name, dims = sys.argv[1:6]
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    shape = [int(d) for d in dims.split("x")]
    m, plain = measured(model, name, shape, threads)
    p, p50 = predicted(edgepack, device, model, f"{name}={dims}", threads)
    print(f"{os.path.basename(model)} {dims}, {threads} thread(s)")
    print(f"{'op':<20} {'kernel classes':<34} {'n meas':>6} {'n pred':>6} "
          f"{'measured ms':>11} {'predicted ms':>12} {'pred/meas':>9}")
    ops = sorted(set(m) | set(p), key=lambda o: -max(m.get(o, [0, 0])[1], p.get(o, [0, 0])[1]))
    for op in ops:
        mn, mt = m.get(op, [0, 0.0])
        pn, pt, classes = p.get(op, [0, 0.0, set()])
        ratio = f"{pt / mt:9.2f}" if mt > 0 else f"{'-':>9}"
        print(f"{op:<20} {','.join(sorted(classes)):<34} {mn:>6} {pn:>6} "
              f"{mt * 1e3:>11.3f} {pt * 1e3:>12.3f} {ratio}")
    mt = sum(v[1] for v in m.values())
    pt = sum(v[1] for v in p.values())
    print(f"{'kernels':<20} {'':<34} {sum(v[0] for v in m.values()):>6} "
          f"{sum(v[0] for v in p.values()):>6} {mt * 1e3:>11.3f} {pt * 1e3:>12.3f} {pt / mt:9.2f}")
    print(f"run p50 without the profiler: {plain * 1e3:.3f} ms; predicted p50: {p50 * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
