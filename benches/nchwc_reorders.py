"""Does the cost model place ONNX Runtime's NCHWc layout reorders where ONNX Runtime does?
(issue 13; BENCHMARKS.md, "Sizing: grouped convs and layout reorders").

For each MODEL=INPUT=DIMS given, runs the model at level `all` through ONNX Runtime's own
profiler (3 runs, 1 thread) and counts the ReorderInput / ReorderOutput kernels per run,
then asks `edgepack predict` for the same shape on DEVICE.json (an x86-64 probe) and
counts the reorders it costed.

    P=~/.cache/edgepack/bench-tf-venv/bin/python   # onnxruntime, numpy
    $P benches/nchwc_reorders.py target/release/edgepack DEVICE.json \\
        ~/.cache/edgepack/models/ppocr/ch_PP-OCRv4_det_infer.onnx=x=1x3x320x320 ...
"""
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

RUNS = 3


def measured(model, name, dims):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = {name: np.random.rand(*dims).astype(np.float32)}
    for _ in range(RUNS):
        sess.run(None, feeds)
    path = sess.end_profiling()
    events = json.load(open(path))
    os.remove(path)
    kernels = collections.Counter(e["args"]["op_name"] for e in events
                                  if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"))
    return {op: n // RUNS for op, n in kernels.items() if op.startswith("Reorder")}


def predicted(edgepack, device, model, shape):
    out = subprocess.run([edgepack, "predict", model, "--device", device, "--threads", "1",
                          "--shape", shape, "--json"], capture_output=True, text=True, check=True)
    kernels = json.loads(out.stdout)["kernels"]
    return dict(collections.Counter(k["op_type"] for k in kernels if k["op_type"].startswith("Reorder")))


def main():
    ort.set_default_logger_severity(3)
    edgepack, device = sys.argv[1], sys.argv[2]
    print(f"{'model':<40} {'ONNX Runtime in/out':>20} {'predicted in/out':>18}")
    for spec in sys.argv[3:]:
        model, name, dims = spec.split("=")
        m = measured(model, name, [int(d) for d in dims.split("x")])
        p = predicted(edgepack, device, model, f"{name}={dims}")
        cell = lambda c: f"{c.get('ReorderInput', 0)}/{c.get('ReorderOutput', 0)}"
        print(f"{os.path.basename(model):<40} {cell(m):>20} {cell(p):>18}")


if __name__ == "__main__":
    main()
