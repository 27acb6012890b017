#!/usr/bin/env python3
"""ONNX Runtime's arena, simulated against measured, run by run.

For each model, ONNX Runtime's Python package measures the resident memory the first run
adds over the session, and what three runs add, with the memory pattern on and off. Each
measurement is a fresh process, with the peak reset after the session is made
(/proc/self/clear_refs). The NCHWc layout is off (unless --nchwc), so the session runs the graph the cost
model plans: its level-`extended` graph, which is also what runs on ARM. Beside the
measurements, `edgepack predict --json` gives its simulation (src/hardware/planner.rs):
  - the arena after the first run;
  - the arena after three;
  - the memory pattern's block.

  EDGEPACK=target/release/edgepack python3 benches/arena_runs.py [--reuse-off] [--nchwc] CASE [CASE ...]
  --reuse-off: ONNX Runtime's buffer reuse off (SessionOptions.enable_mem_reuse = False)
  --nchwc: the NCHWc layout left on (x86-64), as a real session runs; the simulation
           columns still plan the level-`extended` graph
  CASE: path/to/model.onnx[:name=1x3x224x224[,name=...]]   (symbolic dims default to 1)

Run it with the Python that has onnxruntime (the test venv), e.g.
  ~/.cache/edgepack/test-venv/bin/python benches/arena_runs.py ...
"""
import json
import os
import subprocess
import sys

MIB = 2**20
DEVICE = os.path.join(os.path.dirname(__file__), "..", "hardware", "reference", "xeon-2c.device.json")

MEASURE = r"""
import sys, json, numpy as np, onnxruntime as ort
path, shapes, pattern, reuse = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
nchwc = sys.argv[5] == "1"
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.enable_mem_pattern = pattern
so.enable_mem_reuse = reuse
so.log_severity_level = 3
before = status("VmRSS")
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"],
                         disabled_optimizers=[] if nchwc else ["NchwcTransformer"])
feeds = {}
types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
for i in s.get_inputs():
    shape = shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape]
    dt = types[i.type]
    feeds[i.name] = (np.random.rand(*shape) * 2).astype(dt) if dt == np.float32 else np.ones(shape, dt)
session = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
runs = []
for _ in range(3):
    s.run(None, feeds)
    runs.append(status("VmHWM") - session)
print(json.dumps({"session": session - before, "run1": runs[0], "run3": runs[2]}))
"""


def measure(path, shapes, pattern, reuse, nchwc):
    out = subprocess.run([sys.executable, "-c", MEASURE, path, json.dumps(shapes), "1" if pattern else "0",
                          "1" if reuse else "0", "1" if nchwc else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def simulate(path, shapes):
    edgepack = os.environ.get("EDGEPACK", "target/release/edgepack")
    flags = [a for n, s in shapes.items() for a in ("--shape", f"{n}={'x'.join(map(str, s))}")]
    out = subprocess.run([edgepack, "predict", path, "--device", DEVICE, "--json", *flags],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"edgepack predict {path}: {out.stderr.strip()}")
    return json.loads(out.stdout)["activation_plan"]


def main(args):
    reuse = "--reuse-off" not in args
    nchwc = "--nchwc" in args
    args = [a for a in args if a not in ("--reuse-off", "--nchwc")]
    if not args:
        sys.exit(__doc__)
    print(f"{'model':28s} {'run 1':>14s} {'3 runs':>14s} {'3 runs, no pattern':>19s} {'block':>6s}   "
          "(MiB, measured / simulated)")
    for case in args:
        path, _, spec = case.partition(":")
        shapes = {}
        for item in filter(None, spec.split(",")):
            n, _, s = item.partition("=")
            shapes[n] = [int(d) for d in s.split("x")]
        sim = simulate(path, shapes)
        on, off = measure(path, shapes, True, reuse, nchwc), measure(path, shapes, False, reuse, nchwc)
        first, total, block = (sim["arena_first_run_bytes"] / MIB, sim["arena_touched_bytes"] / MIB,
                               sim["pattern_bytes"] / MIB)
        name = os.path.basename(path)[:20] + (" " + "x".join(map(str, next(iter(shapes.values())))) if shapes else "")
        print(f"{name[:28]:28s} {on['run1'] / MIB:6.1f} / {first:5.1f} {on['run3'] / MIB:6.1f} / {total:5.1f} "
              f"{off['run3'] / MIB:10.1f} / {first:5.1f} {block:6.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
