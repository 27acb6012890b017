#!/usr/bin/env python3
"""What ONNX Runtime's constant folding leaves resident when it makes weights from loaded ones.

Two measurements, both of the resident size after session creation:

1. Silero VAD (its LSTM weights reach the LSTMs through a Slice, a Concat and an Unsqueeze
   that constant folding evaluates when the session is created) with and without the
   `ConstantFolding` optimizer (`disabled_optimizers`), in this Python process's own
   `onnxruntime`, one fresh process per session.
2. Hand-made nets, each profiled by `edgepack profile --plan quick` (the worker that
   settles glibc's mmap threshold, as every edgepack measurement does): K weights of N x N
   floats added to (or multiplied with) the running value, loaded as they are or each
   loaded as [1, N, N] behind a Reshape to [N, N]. The difference is what the folding
   step leaves per byte.

usage: constant_folding_memory.py EDGEPACK SILERO.onnx WORKDIR
(benches/constant_folding_memory.sh sets these up.)
"""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIB = 2.0**20

SESSION_RSS = r"""
import sys, onnxruntime as ort
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
settle = bytearray(31 << 20); del settle   # as edgepack's worker settles the mmap threshold
so = ort.SessionOptions(); so.intra_op_num_threads = 1
disabled = [x for x in sys.argv[2].split(',') if x]
before = rss()
ort.InferenceSession(sys.argv[1], so, providers=['CPUExecutionProvider'], disabled_optimizers=disabled)
print((rss() - before) / 2.0**20)
"""


def session_mib(model, disabled):
    out = subprocess.run([sys.executable, "-c", SESSION_RSS, model, ",".join(disabled)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def net(path, consumer, k, n, folded):
    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    for i in range(k):
        w = rng.uniform(-0.1, 0.1, (n, n)).astype(np.float32)
        if folded:
            inits.append(numpy_helper.from_array(w.reshape(1, n, n), f"w{i}_loaded"))
            inits.append(numpy_helper.from_array(np.array([n, n], np.int64), f"shape{i}"))
            nodes.append(helper.make_node("Reshape", [f"w{i}_loaded", f"shape{i}"], [f"w{i}"]))
        else:
            inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node(consumer, [cur, f"w{i}"], [f"y{i}"]))
        cur = f"y{i}"
    g = helper.make_graph(nodes, "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [n, n])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def profiled_mib(edgepack, model, work):
    out = os.path.join(work, "profile.json")
    subprocess.run([edgepack, "profile", model, "--plan", "quick", "--threads", "1", "--json-out", out],
                   check=True, capture_output=True)
    mem = json.load(open(out))["configs"][0]["memory"]
    return (mem["rss_after_session_bytes"] - mem["rss_before_load_bytes"]) / MIB


def main():
    edgepack, silero, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    with_folding = session_mib(silero, [])
    without = session_mib(silero, ["ConstantFolding"])
    print(f"Silero VAD, after session creation: {with_folding:.1f} MiB with constant folding, "
          f"{without:.1f} MiB without ({with_folding - without:+.1f} MiB)")
    print("hand-made nets (edgepack profile): after session creation, MiB over before load")
    print(f"{'consumer':<9} {'weights':>12} {'loaded':>8} {'folded':>8} {'per byte':>9}")
    for consumer, k, n in [("Add", 8, 512), ("MatMul", 8, 512), ("MatMul", 1, 1024), ("MatMul", 1, 2048),
                           ("Add", 1, 2048)]:
        sizes = []
        for folded in (False, True):
            path = os.path.join(work, f"{consumer}-{k}x{n}-{'folded' if folded else 'loaded'}.onnx")
            net(path, consumer, k, n, folded)
            sizes.append(profiled_mib(edgepack, path, work))
        mib = k * n * n * 4 / MIB
        print(f"{consumer:<9} {f'{k}x {mib / k:g} MiB':>12} {sizes[0]:8.1f} {sizes[1]:8.1f} "
              f"{(sizes[1] - sizes[0]) / mib:9.2f}")


if __name__ == "__main__":
    main()
