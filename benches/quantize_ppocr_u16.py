#!/usr/bin/env python3
"""Do 16-bit QDQ activations pay on ONNX Runtime's CPU kernels? (issue 16, mixed 8/16-bit)

Takes an edgepack `--mode int8` model written by benches/quantize_ppocr.py (u8 activation
Q/DQ pairs, int8 weights) and rewrites activation Q/DQ pairs to uint16 over the same real
range (scale x 255/65535, zero point rescaled), then measures, interleaved against the
ORIGINAL fp32 model with the same code as quantize_ppocr.py (1 thread, batch 6 for rec):

  u8                  the int8 model as written
  u16 all             every activation pair in uint16 (what 16-bit compute costs)
  u16 top-K           the K tensors whose u16 alone lowers the output error most, rest u8
  float top-K         the same K tensors without any Q/DQ (their readers compute in float
                      on float data; writers' other readers keep u8)

Usage (the bench venv; after quantize_ppocr.py has written /tmp/int8-qb/rec.edgepack.int8.onnx):
  python benches/quantize_ppocr_u16.py --work /tmp/int8-qb --kind rec --top 8
"""
import argparse, copy, os, sys, time

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quantize_ppocr as qp  # noqa: E402


def act_pairs(m):
    """Activation tensor -> (Q node, DQ node), for u8 pairs on non-initializer tensors."""
    inits = {i.name: i for i in m.graph.initializer}
    qs = {n.input[0]: n for n in m.graph.node if n.op_type == "QuantizeLinear"}
    dqs = {n.input[0]: n for n in m.graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for t, q in qs.items():
        if t in inits or len(q.input) < 3:
            continue
        zp = inits.get(q.input[2])
        if zp is None or zp.data_type != onnx.TensorProto.UINT8:
            continue
        dq = dqs.get(q.output[0])
        if dq is not None:
            out[t] = (q, dq)
    return out


def to_u16(m, tensors):
    m = copy.deepcopy(m)
    inits = {i.name: i for i in m.graph.initializer}
    pairs = act_pairs(m)
    for t in tensors:
        q, dq = pairs[t]
        s = float(numpy_helper.to_array(inits[q.input[1]]))
        zp = int(numpy_helper.to_array(inits[q.input[2]]))
        lo, hi = -zp * s, (255 - zp) * s
        s16 = max((hi - lo) / 65535.0, 1e-12)
        zp16 = int(np.clip(round(-lo / s16), 0, 65535))
        sn, zn = f"{t}_scale16", f"{t}_zero_point16"
        m.graph.initializer.append(numpy_helper.from_array(np.array(s16, np.float32), sn))
        m.graph.initializer.append(numpy_helper.from_array(np.array(zp16, np.uint16), zn))
        for n in (q, dq):
            n.input[1], n.input[2] = sn, zn
            # uint16 Q/DQ needs opset 21; below that ONNX Runtime takes its contrib ops (what
            # its own quantizer emits for 16-bit activations).
            n.domain = "com.microsoft"
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return m


def to_float(m, tensors):
    """Drop the Q/DQ pairs of `tensors`: readers of the DQ output read the tensor itself."""
    m = copy.deepcopy(m)
    pairs = act_pairs(m)
    drop, rename = set(), {}
    for t in tensors:
        q, dq = pairs[t]
        drop.update([id(q), id(dq)])
        rename[dq.output[0]] = t
    keep = [n for n in m.graph.node if id(n) not in drop]
    for n in keep:
        for i, x in enumerate(n.input):
            if x in rename:
                n.input[i] = rename[x]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/int8-qb")
    ap.add_argument("--kind", default="rec")
    ap.add_argument("--models", default=os.path.expanduser("~/.cache/edgepack/models/ppocr"))
    ap.add_argument("--base", default="int8", help="the edgepack row tag whose model to start from (e.g. mse)")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--latency-s", type=float, default=6.0)
    ap.add_argument("--rank-eval", type=int, default=4, help="held-out inputs used to rank tensors")
    args = ap.parse_args()
    kind = args.kind
    src = os.path.join(args.models, qp.MODELS[kind])
    base_path = os.path.join(args.work, f"{kind}.edgepack.{args.base}.onnx")
    base = onnx.load(base_path)
    evals = qp.load_split(args.work, kind, "eval")
    batch = 6 if kind in ("cls", "rec") else 1
    xb = np.concatenate([evals[i % len(evals)] for i in range(batch)])
    pairs = act_pairs(base)
    print(f"{len(pairs)} u8 activation pairs", flush=True)

    def save(m, tag):
        p = os.path.join(args.work, f"{kind}.u16.{tag}.onnx")
        onnx.save(m, p)
        return p

    # Rank: each tensor alone in u16, output noise vs fp32 on a few held-out inputs.
    ref = qp.session(src)
    refs = [ref.run(None, {"x": x})[0] for x in evals[: args.rank_eval]]
    t0 = time.perf_counter()
    scores = []
    for t in sorted(pairs):
        p = save(to_u16(base, [t]), "probe")
        s = qp.session(p)
        noise = sum(float(((s.run(None, {"x": x})[0] - r) ** 2).sum()) for x, r in zip(evals, refs))
        scores.append((noise, t))
    scores.sort()
    top = [t for _, t in scores[: args.top]]
    print(f"ranked {len(pairs)} tensors in {time.perf_counter() - t0:.0f} s; top {args.top}: {top}", flush=True)
    rows = [("u8", base_path),
            ("u16 all", save(to_u16(base, list(pairs)), "all")),
            (f"u16 top-{args.top}", save(to_u16(base, top), "top")),
            (f"float top-{args.top}", save(to_float(base, top), "floattop"))]
    print("| variant | latency vs fp32 | SQNR dB | task metric vs fp32 |")
    print("|---|---|---|---|")
    for name, p in rows:
        sq, _, _, task = qp.metrics(src, p, evals, kind)
        lr, ta, tb, pairs_n = qp.latency_ratio(src, p, xb, budget_s=args.latency_s)
        r = dict(task)
        print(f"| {kind} {name} | {lr:.3f}x ({ta*1e3:.0f} -> {tb*1e3:.0f} ms, {pairs_n} pairs) | {sq:.2f} | {qp.task_text(r)} |", flush=True)


if __name__ == "__main__":
    main()
