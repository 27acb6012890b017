"""Does ONNX Runtime's NCHWc layout pad conv channels to its block? (issue 13, cost::nchwc_padding)

For each pair, two chains of 8 convs at level `all` on one thread: one with a channel count
that is not a multiple of the block, one with the padded count. The two sessions run
interleaved (A, B, B, A, ...) and the median of the per-pair time ratios is printed beside
the ratio of their multiply-accumulates. If the layout pads, the time ratio is near 1 where
the work ratio is below 1.

Usage: python benches/nchwc_padding.py [--pairs 200]
(needs onnx, onnxruntime, numpy; e.g. the bench venv of benches/quantize_ppocr.sh)
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def chain(cin, cout, k, hw, depthwise=False, n=8):
    """n convs alternating cin->cout and cout->cin (depthwise: n convs of cin channels)."""
    nodes, inits, x, macs = [], [], "x", 0
    rng = np.random.default_rng(0)
    for i in range(n):
        a, b = (cin, cout) if i % 2 == 0 else (cout, cin)
        group = 1
        if depthwise:
            a = b = group = cin
        w = (rng.random((b, a // group, k, k), dtype=np.float32) - 0.5) * 0.1
        macs += b * (a // group) * k * k * hw * hw
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"y{i}"], pads=[k // 2] * 4, group=group))
        x = f"y{i}"
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, hw, hw])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString(), macs


def session(blob):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(blob, o, providers=["CPUExecutionProvider"])


def ratio(a, b, pairs):
    (ba, ma), (bb, mb) = a, b
    sa, sb = session(ba), session(bb)
    xa = {"x": np.random.rand(*sa.get_inputs()[0].shape).astype(np.float32)}
    xb = {"x": np.random.rand(*sb.get_inputs()[0].shape).astype(np.float32)}
    for _ in range(3):
        sa.run(None, xa), sb.run(None, xb)
    r = []
    for i in range(pairs):
        t = {}
        for s, x, key in ((sa, xa, "a"), (sb, xb, "b")) if i % 2 == 0 else ((sb, xb, "b"), (sa, xa, "a")):
            t0 = time.perf_counter(); s.run(None, x); t[key] = time.perf_counter() - t0
        r.append(t["a"] / t["b"])
    return float(np.median(r)), ma / mb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=200)
    args = ap.parse_args()
    print(f"onnxruntime {ort.__version__}; 1 thread, level all, chains of 8 convs; "
          f"{args.pairs} interleaved pairs per row")
    print(f"{'A':<28} {'B':<28} {'time A/B':>9} {'MACs A/B':>9}")
    rows = [
        ("1x1 96<->24, 80x80", chain(96, 24, 1, 80), "1x1 96<->32, 80x80", chain(96, 32, 1, 80)),
        ("3x3 24<->24, 80x80", chain(24, 24, 3, 80), "3x3 32<->32, 80x80", chain(32, 32, 3, 80)),
        ("3x3 40<->40, 40x40", chain(40, 40, 3, 40), "3x3 48<->48, 40x40", chain(48, 48, 3, 40)),
        ("3x3 8<->8, 80x80", chain(8, 8, 3, 80), "3x3 16<->16, 80x80", chain(16, 16, 3, 80)),
        ("depthwise 3x3 24, 80x80", chain(24, 24, 3, 80, True), "depthwise 3x3 32, 80x80", chain(32, 32, 3, 80, True)),
        ("depthwise 3x3 40, 80x80", chain(40, 40, 3, 80, True), "depthwise 3x3 48, 80x80", chain(48, 48, 3, 80, True)),
    ]
    for na, a, nb, b in rows:
        t, w = ratio(a, b, args.pairs)
        print(f"{na:<28} {nb:<28} {t:>9.3f} {w:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
