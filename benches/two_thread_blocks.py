"""Why small conv nets gain nothing from a second thread on a 2-vCPU host (issue 13).

Builds three chains of 8 blocks at PP-OCR classifier scale (16 channels, 24x96), times each at 1
and 2 intra-op threads through ONNX Runtime (sessions interleaved, median of 30 x 20 runs), then
runs ORT's own per-node profiler on the hard-swish chain at both thread counts:

  conv  3x3 conv only (what the probe's conv lines are)
  hs    conv, then hard-swish as x * HardSigmoid(x)
  se    conv, hard-swish, then a squeeze-excitation block (GlobalAveragePool, 1x1 convs)

    ~/.cache/edgepack/bench-venv/bin/python benches/two_thread_blocks.py   # onnx, numpy, onnxruntime
"""
import collections
import json
import os
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper as h, numpy_helper as nh

C, H, W, BLOCKS = 16, 24, 96, 8


def build(kind, rng):
    nodes, inits, x = [], [], "x"
    for i in range(BLOCKS):
        inits.append(nh.from_array((rng.standard_normal((C, C, 3, 3)) * 0.1).astype(np.float32), f"w{i}"))
        nodes.append(h.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        x = f"c{i}"
        if kind in ("hs", "se"):
            nodes += [h.make_node("HardSigmoid", [x], [f"hs{i}"]), h.make_node("Mul", [x, f"hs{i}"], [f"a{i}"])]
            x = f"a{i}"
        if kind == "se":
            r = C // 4
            inits += [nh.from_array((rng.standard_normal((r, C, 1, 1)) * 0.1).astype(np.float32), f"s1{i}"),
                      nh.from_array((rng.standard_normal((C, r, 1, 1)) * 0.1).astype(np.float32), f"s2{i}")]
            nodes += [h.make_node("GlobalAveragePool", [x], [f"g{i}"]),
                      h.make_node("Conv", [f"g{i}", f"s1{i}"], [f"q{i}"]),
                      h.make_node("Relu", [f"q{i}"], [f"r{i}"]),
                      h.make_node("Conv", [f"r{i}", f"s2{i}"], [f"p{i}"]),
                      h.make_node("HardSigmoid", [f"p{i}"], [f"ps{i}"]),
                      h.make_node("Mul", [x, f"ps{i}"], [f"m{i}"])]
            x = f"m{i}"
    g = h.make_graph(nodes, kind, [h.make_tensor_value_info("x", T.FLOAT, [1, C, H, W])],
                     [h.make_tensor_value_info(x, T.FLOAT, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def session(model, threads, profile_prefix=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    print(f"onnxruntime {ort.__version__}; chains of {BLOCKS} blocks, {C}x{H}x{W}")
    models = {k: build(k, rng) for k in ("conv", "hs", "se")}
    for kind, model in models.items():
        s = {t: session(model, t) for t in (1, 2)}
        for t in (1, 2):
            for _ in range(50):
                s[t].run(None, {"x": x})
        times = {1: [], 2: []}
        for _ in range(30):
            for t in (1, 2):
                t0 = time.perf_counter()
                for _ in range(20):
                    s[t].run(None, {"x": x})
                times[t].append((time.perf_counter() - t0) / 20)
        m1, m2 = np.median(times[1]), np.median(times[2])
        print(f"{kind:5s} 1 thread {m1 * 1e6:7.1f} us   2 threads {m2 * 1e6:7.1f} us   speedup {m1 / m2:.2f}x")
    print("hs chain, ORT's per-node profile (us per run, by op; profiling adds its own overhead):")
    with tempfile.TemporaryDirectory() as d:
        for t in (1, 2):
            s = session(models["hs"], t, os.path.join(d, f"p{t}"))
            for _ in range(200):
                s.run(None, {"x": x})
            agg = collections.defaultdict(float)
            for e in json.load(open(s.end_profiling())):
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    agg[e["args"].get("op_name")] += e["dur"] / 200
            print(f"  {t} thread(s): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(agg.items())))


if __name__ == "__main__":
    main()
