#!/usr/bin/env python3
"""Write a `light_*` model of the ONNX backend test data with its weights in the file.

The `light_*` models keep the architecture of the ONNX model zoo's nets but make every
weight with a `ConstantOfShape` node filled with 0.02. ONNX Runtime folds those nodes
when it creates the session, and, every weight of a shape being the same constant,
merges the identical ones (common subexpression elimination): light ResNet-50 declares
97.7 MiB of weights of which 43.6 MiB are distinct. A real export carries its trained
weights as initializers in the file, all distinct, which the runtime loads and keeps.
So the light models understate what a real net of the same architecture costs, in memory
above all. This writes the same net with each `ConstantOfShape` replaced by an initializer
of its shape, filled with distinct seeded values in [0.01, 0.03] (positive, so batch-norm
variances stay valid; the values do not matter to the kernels' speed or memory).

usage: light_weights_in_file.py LIGHT.onnx OUT.onnx
"""

import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def constant_values(graph):
    """Initializers and Constant node outputs by name, as arrays."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return values


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: light_weights_in_file.py LIGHT.onnx OUT.onnx")
    src, out = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    graph = model.graph
    values = constant_values(graph)
    rng = np.random.default_rng(20261207)
    kept, made = [], 0
    for node in graph.node:
        shape = values.get(node.input[0]) if node.op_type == "ConstantOfShape" else None
        if shape is None:
            kept.append(node)
            continue
        dtype = np.float32
        for a in node.attribute:
            if a.name == "value":
                dtype = numpy_helper.to_array(a.t).dtype
        dims = tuple(int(d) for d in shape.reshape(-1))
        weight = rng.uniform(0.01, 0.03, size=dims).astype(dtype)
        graph.initializer.append(numpy_helper.from_array(weight, node.output[0]))
        made += 1
    if made == 0:
        sys.exit(f"{src}: no ConstantOfShape with a constant shape: not a light model")
    del graph.node[:]
    graph.node.extend(kept)
    # IR 3 (the light models') lists every initializer among the graph inputs as well,
    # which makes ONNX Runtime treat them as overridable, not constant: no fusion folds
    # them. IR 4 lifted that, and exports today are IR 7 or later: drop those inputs.
    model.ir_version = max(model.ir_version, 4)
    names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in names]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    tmp = out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
