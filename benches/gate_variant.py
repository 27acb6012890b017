"""Make a slower variant of an ONNX model for the gate reliability benchmark.

Appends a chain of K `Tanh` nodes on the first input, reduces it to a scalar, multiplies
by 0 and adds it to the first output: the outputs are unchanged (for finite inputs) and
every run pays for K extra element-wise passes over the input. K = 0 copies the model.

usage: python gate_variant.py SRC.onnx DST.onnx K
"""
import sys

import onnx
from onnx import TensorProto, helper

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = onnx.load(src)
g = m.graph
if k > 0:
    x = g.input[0].name
    out = g.output[0].name
    pre = out + "__gate_bench_pre"
    for n in g.node:
        n.output[:] = [pre if o == out else o for o in n.output]
        n.input[:] = [pre if i == out else i for i in n.input]
    prev = x
    for i in range(k):
        g.node.append(helper.make_node("Tanh", [prev], [f"gate_bench_chain_{i}"], name=f"gate_bench_chain_{i}"))
        prev = f"gate_bench_chain_{i}"
    g.node.append(helper.make_node("ReduceMean", [prev], ["gate_bench_mean"], keepdims=0, name="gate_bench_mean"))
    g.initializer.append(helper.make_tensor("gate_bench_zero", TensorProto.FLOAT, [], [0.0]))
    g.node.append(helper.make_node("Mul", ["gate_bench_mean", "gate_bench_zero"], ["gate_bench_nothing"], name="gate_bench_nothing"))
    g.node.append(helper.make_node("Add", [pre, "gate_bench_nothing"], [out], name="gate_bench_add"))
onnx.save(m, dst)
