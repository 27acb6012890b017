#!/usr/bin/env python3
"""Quantizer benchmark: edgepack vs ONNX Runtime's Python quantizer on the PP-OCR models.

Run through benches/quantize_ppocr.sh (creates its own venv with onnxruntime==1.31.1, onnx,
numpy, pillow). Both quantizers get the same calibration and evaluation images, rendered
here with PIL (text lines for the classifier and recognizer, pages of lines for the
detector), normalised the way PP-OCR expects:
  det: x/255, ImageNet mean/std, RGB, NCHW          (640x640 pages)
  rec: (x/255 - 0.5)/0.5, NCHW, 48 high             (48x320 lines)
  cls: (x/255 - 0.5)/0.5, NCHW, 3x48x192            (half of the lines rotated 180 deg)

ORT's quantizer gets the manual fixes a careful user needs (Constant nodes -> initializers
with the onnx package, onnx.version_converter to opset 13), then quantize_static in QDQ
format, per-channel, uint8 activations, int8 weights, MinMax, all default op types.

All figures are computed here, by the same code for both rows:
  size ratio       quantized file bytes / original fp32 file bytes
  latency ratio    median of per-pair ratios over interleaved runs (fp32, q, fp32, q...) of
                   the ORIGINAL fp32 model and the quantized model, same SessionOptions
                   (1 intra-op thread, ORT_ENABLE_ALL), batch 6 for cls/rec, 1 for det
  SQNR / cosine    over all outputs of all evaluation images vs the original fp32 model
  top-1            argmax agreement along the last axis (cls: per image, rec: per timestep)
  rec CER          the task metric of the recognizer: each output line decoded greedily (CTC:
                   argmax over the last axis, merge repeats, drop blank 0), character error
                   rate = edit distance to the fp32 model's text / fp32 text length, pooled
                   over all held-out lines; "lines same" = lines decoded identically
  det mask IoU     the detector's task metric: the probability map binarised at 0.3 (as
                   PP-OCR's post-processing does), IoU of the int8 mask with the fp32 mask per
                   held-out page; mean and worst
  command wall     wall time of the quantize call (ORT: prep + quantize_static; edgepack:
                   the whole CLI command, which also evaluates the result on the eval set)
  quantize s       ORT: the same; edgepack: `quantize_wall_s` from its report (load,
                   preparation, calibration; without the evaluation ORT does not do)
"""
import argparse, json, os, random, shutil, subprocess, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from PIL import Image, ImageDraw, ImageFont

MODELS = {
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "det": "ch_PP-OCRv4_det_infer.onnx",
}
WORDS = ("invoice total amount date serial number lot batch part qty pcs order ship to from "
         "model rev station line shift operator pass fail torque 12.5Nm 2026-11-26 A1B2C3 "
         "OK NG 0.75mm SN:4471-22 PO#88123 EDGE PACK label barcode weight 3.2kg").split()


def font(size, rng):
    for path in ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"]:
        if os.path.exists(path) and rng.random() < 0.7:
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def line_image(rng, w, h, rotate=False):
    bg = tuple(int(x) for x in rng.integers(180, 256, 3))
    fg = tuple(int(x) for x in rng.integers(0, 90, 3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    f = font(int(rng.integers(int(h * 0.55), int(h * 0.8))), random.Random(int(rng.integers(1 << 30))))
    d.text((int(rng.integers(0, 8)), int(rng.integers(0, max(1, h // 8)))), text(random.Random(int(rng.integers(1 << 30))), int(rng.integers(2, 5))), fill=fg, font=f)
    if rotate:
        img = img.rotate(180)
    return img


def page_image(rng, w, h):
    bg = tuple(int(x) for x in rng.integers(200, 256, 3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    y = int(rng.integers(5, 40))
    while y < h - 30:
        size = int(rng.integers(14, 34))
        f = font(size, random.Random(int(rng.integers(1 << 30))))
        fg = tuple(int(x) for x in rng.integers(0, 80, 3))
        d.text((int(rng.integers(5, w // 3)), y), text(random.Random(int(rng.integers(1 << 30))), int(rng.integers(2, 7))), fill=fg, font=f)
        y += size + int(rng.integers(8, 40))
    return img


def make_data(root, kind, n_calib, n_eval, seed=7, splits=("calib", "eval")):
    rng = np.random.default_rng(seed)
    for split, n in zip(splits, (n_calib, n_eval)):
        if n == 0:
            continue
        d = os.path.join(root, kind, split)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            if kind == "det":
                img = page_image(rng, 640, 640)
            elif kind == "rec":
                img = line_image(rng, 320, 48)
            else:
                img = line_image(rng, 192, 48, rotate=bool(i % 2))
            img.save(os.path.join(d, f"{i:04d}.png"))


def preprocess(kind, path):
    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    if kind == "det":
        x = (x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    else:
        x = (x / 255.0 - 0.5) / 0.5
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def edgepack_pre_flags(kind):
    if kind == "det":
        return ["--pixel-scale", str(1 / 255), "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]
    return ["--pixel-scale", str(1 / 255), "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]


def load_split(root, kind, split):
    d = os.path.join(root, kind, split)
    return [preprocess(kind, os.path.join(d, f)) for f in sorted(os.listdir(d))]


def session(path, threads=1, config=None):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    # Session entries the quantized model is meant to run with (edgepack's report
    # `session_config`, carried by its packages), e.g. session.disable_quant_qdq.
    for k, v in (config or {}).items():
        o.add_session_config_entry(k, v)
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def ort_quantize(src, dst, calib):
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    t0 = time.perf_counter()
    m = onnx.load(src)
    keep = []
    for n in m.graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m = version_converter.convert_version(m, 13)
    fixed = dst + ".fixed.onnx"
    onnx.save(m, fixed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(fixed, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    os.remove(fixed)
    return time.perf_counter() - t0


def ctc_greedy(scores):
    """Greedy CTC decoding of one line (`[T, C]`): argmax per timestep, merge repeats, drop
    the blank (class 0)."""
    out, prev = [], -1
    for k in scores.argmax(-1).tolist():
        if k != prev and k != 0:
            out.append(k)
        prev = k
    return out


def edit_distance(a, b):
    """Levenshtein distance between two sequences (unit costs)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def mask_iou(a, b, threshold=0.3):
    ma, mb = a > threshold, b > threshold
    union = np.logical_or(ma, mb).sum()
    return 1.0 if union == 0 else float(np.logical_and(ma, mb).sum() / union)


def metrics(fp32, q, evals, kind, config=None):
    """Output and task metrics of `q` against `fp32` on the held-out inputs."""
    a, b = session(fp32), session(q, config=config)
    sig = noise = dot = nb = 0.0
    agree = rows = 0
    errors = ref_chars = same = lines = 0
    ious = []
    for x in evals:
        ra = a.run(None, {"x": x})[0].astype(np.float64)
        rb = b.run(None, {"x": x})[0].astype(np.float64)
        sig += (ra ** 2).sum(); noise += ((ra - rb) ** 2).sum(); dot += (ra * rb).sum(); nb += (rb ** 2).sum()
        if kind in ("cls", "rec"):
            ka, kb = ra.argmax(-1).ravel(), rb.argmax(-1).ravel()
            agree += int((ka == kb).sum()); rows += ka.size
        if kind == "rec":
            for la, lb in zip(ra, rb):
                ta, tb = ctc_greedy(la), ctc_greedy(lb)
                errors += edit_distance(ta, tb); ref_chars += len(ta)
                same += int(ta == tb); lines += 1
        if kind == "det":
            ious += [mask_iou(pa, pb) for pa, pb in zip(ra.reshape(len(ra), -1), rb.reshape(len(rb), -1))]
    sqnr = 10 * np.log10(sig / noise) if noise > 0 else float("inf")
    cos = dot / np.sqrt(sig * nb)
    task = {}
    if kind == "rec":
        task = dict(cer=errors / max(ref_chars, 1), lines_same=same, lines=lines, ref_chars=ref_chars)
    if kind == "det":
        task = dict(iou_mean=float(np.mean(ious)), iou_worst=float(np.min(ious)), pages=len(ious))
    return sqnr, cos, (agree / rows if rows else None), task


def task_text(r):
    if "cer" in r:
        return f"CER {r['cer']*100:.2f}%, {r['lines_same']}/{r['lines']} lines same"
    if "iou_mean" in r:
        return f"mask IoU@0.3 {r['iou_mean']:.4f} mean, {r['iou_worst']:.4f} worst"
    return "-"


def latency_ratio(fp32, q, x, budget_s=20.0, min_pairs=10, config=None):
    a, b = session(fp32), session(q, config=config)
    a.run(None, {"x": x}); b.run(None, {"x": x})
    ratios, ta, tb = [], [], []
    t_end = time.perf_counter() + budget_s
    while len(ratios) < min_pairs or (time.perf_counter() < t_end and len(ratios) < 400):
        order = (a, b) if len(ratios) % 2 == 0 else (b, a)
        t = {}
        for s in order:
            t0 = time.perf_counter(); s.run(None, {"x": x}); t[id(s)] = time.perf_counter() - t0
        ta.append(t[id(a)]); tb.append(t[id(b)]); ratios.append(t[id(b)] / t[id(a)])
    return float(np.median(ratios)), float(np.median(ta)), float(np.median(tb)), len(ratios)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgepack", required=True)
    ap.add_argument("--models", default=os.path.expanduser("~/.cache/edgepack/models/ppocr"))
    ap.add_argument("--work", default="/tmp/edgepack-qbench")
    ap.add_argument("--only", default="cls,rec,det")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--eval", type=int, default=16)
    ap.add_argument("--test", type=int, default=0,
                    help="also render N test inputs from another seed, never shown to edgepack, and "
                         "report every row's SQNR and task metric on them instead of on the eval "
                         "split (which `--accuracy-target` searches against, so it flatters those rows)")
    ap.add_argument("--method", default="minmax")
    ap.add_argument("--extra", default="", help="extra edgepack flags")
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument("--latency-s", type=float, default=20.0,
                    help="seconds of interleaved latency pairs per row (at least 10 pairs)")
    ap.add_argument("--modes", default="int8",
                    help="edgepack modes, comma-separated (int8, auto, fp16, int4-weight, ...)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="an extra edgepack row: NAME=quantize flags (e.g. "
                         "'mse-ada=--mode int8 --method mse --weight-rounding adaround'); repeatable")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for kind in args.only.split(","):
        src = os.path.join(args.models, MODELS[kind])
        if not os.path.exists(os.path.join(args.work, kind, "eval")):
            make_data(args.work, kind, args.calib, args.eval)
        calib = load_split(args.work, kind, "calib")[: args.calib]
        evals = load_split(args.work, kind, "eval")
        scored = evals
        if args.test:
            if not os.path.exists(os.path.join(args.work, kind, "test")):
                make_data(args.work, kind, args.test, 0, seed=1007, splits=("test", ""))
            scored = load_split(args.work, kind, "test")[: args.test]
        batch = 6 if kind in ("cls", "rec") else 1
        xb = np.concatenate([evals[i % len(evals)] for i in range(batch)])
        cands = []
        runs = [(("edgepack" if m == "int8" else f"edgepack {m}"), m, ["--mode", m, "--method", args.method])
                for m in args.modes.split(",") if m]
        for v in args.variant:
            vname, _, vflags = v.partition("=")
            runs.append((f"edgepack {vname}", vname, vflags.split()))
        for name, tag, flags in runs:
            if "int4-weight" in flags and kind != "rec":
                continue  # det and cls have no MatMul: nothing for int4 weight-only
            out_e = os.path.join(args.work, f"{kind}.edgepack.{tag}.onnx")
            cmd = [args.edgepack, "quantize", src, "-o", out_e,
                   "--calibration", os.path.join(args.work, kind, "calib"), "--calibration-samples", str(args.calib),
                   "--eval", os.path.join(args.work, kind, "eval"), "--no-latency",
                   "--report", out_e + ".report.json"] + flags + edgepack_pre_flags(kind) + args.extra.split()
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            wall_e = time.perf_counter() - t0
            if p.returncode not in (0, 1):
                print(p.stdout, p.stderr, file=sys.stderr)
                raise SystemExit(f"edgepack {' '.join(flags)} failed on {kind}")
            with open(out_e + ".report.json") as f:
                rep = json.load(f)
            cands.append((name, out_e, wall_e, rep["quantize_wall_s"], rep.get("session_config", {})))
        if not args.skip_ort:
            out_o = os.path.join(args.work, f"{kind}.ort.int8.onnx")
            wall_o = ort_quantize(src, out_o, calib)
            cands.append(("ort-python", out_o, wall_o, wall_o, {}))
        for name, path, wall, quant_s, config in cands:
            sq, cos, top1, task = metrics(src, path, scored, kind, config)
            lr, ta, tb, pairs = latency_ratio(src, path, xb, budget_s=args.latency_s, config=config)
            rows.append(dict(model=kind, quantizer=name, size_ratio=os.path.getsize(path) / os.path.getsize(src),
                             latency_ratio=lr, fp32_p50_ms=ta * 1e3, int8_p50_ms=tb * 1e3, pairs=pairs,
                             sqnr_db=sq, cosine=cos, top1=top1, wall_s=wall, quantize_s=quant_s, **task))
            r = rows[-1]
            print(f"{kind:4} {name:11} size {r['size_ratio']:.3f}x  latency {lr:.3f}x ({ta*1e3:.1f} -> {tb*1e3:.1f} ms, {pairs} pairs)  "
                  f"SQNR {sq:6.2f} dB  cos {cos:.5f}  top1 {'-' if top1 is None else f'{top1*100:.2f}%'}  {task_text(r)}  wall {wall:.1f} s (quantize {quant_s:.1f} s)", flush=True)
    print()
    if args.test:
        print(f"SQNR, cosine, top-1 and task metric on {args.test} test inputs per model (seed 1007), "
              "not the eval split edgepack saw")
    print("| model | quantizer | size vs fp32 | latency vs fp32 | SQNR dB | cosine | top-1 agree | task metric vs fp32 (held-out) | command wall s | quantize s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t1 = "-" if r["top1"] is None else f"{r['top1']*100:.2f}%"
        print(f"| {r['model']} | {r['quantizer']} | {r['size_ratio']:.3f}x | {r['latency_ratio']:.3f}x | {r['sqnr_db']:.2f} | {r['cosine']:.5f} | {t1} | {task_text(r)} | {r['wall_s']:.1f} | {r['quantize_s']:.1f} |")
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
