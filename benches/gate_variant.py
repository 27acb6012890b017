"""Make a slower variant of an ONNX model for the gate reliability benchmark.

Takes the first ROWS rows (axis 2) of the first input, runs them through a chain of K
`Tanh` nodes, reduces the result to a scalar, multiplies by 0 and adds it to the first
output: the outputs are unchanged (for finite inputs) and every run pays for K extra
element-wise passes over a slice of the input, so the slowdown grows in small steps.
K = 0 copies the model unchanged.

usage: python gate_variant.py SRC.onnx DST.onnx K [ROWS]
"""
import sys

import onnx
from onnx import TensorProto, helper

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = int(sys.argv[4]) if len(sys.argv) > 4 else 16
m = onnx.load(src)
g = m.graph
if k > 0:
    x = g.input[0].name
    out = g.output[0].name
    pre = out + "__gate_bench_pre"
    for n in g.node:
        n.output[:] = [pre if o == out else o for o in n.output]
        n.input[:] = [pre if i == out else i for i in n.input]
    g.initializer.extend([
        helper.make_tensor("gate_bench_starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("gate_bench_ends", TensorProto.INT64, [1], [rows]),
        helper.make_tensor("gate_bench_axes", TensorProto.INT64, [1], [2]),
        helper.make_tensor("gate_bench_zero", TensorProto.FLOAT, [], [0.0]),
    ])
    g.node.append(helper.make_node(
        "Slice", [x, "gate_bench_starts", "gate_bench_ends", "gate_bench_axes"],
        ["gate_bench_slice"], name="gate_bench_slice"))
    prev = "gate_bench_slice"
    for i in range(k):
        g.node.append(helper.make_node("Tanh", [prev], [f"gate_bench_chain_{i}"], name=f"gate_bench_chain_{i}"))
        prev = f"gate_bench_chain_{i}"
    g.node.append(helper.make_node("ReduceMean", [prev], ["gate_bench_mean"], keepdims=0, name="gate_bench_mean"))
    g.node.append(helper.make_node("Mul", ["gate_bench_mean", "gate_bench_zero"], ["gate_bench_nothing"], name="gate_bench_nothing"))
    g.node.append(helper.make_node("Add", [pre, "gate_bench_nothing"], [out], name="gate_bench_add"))
onnx.save(m, dst)
