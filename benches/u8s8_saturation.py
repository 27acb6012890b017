"""Does ONNX Runtime's u8 x s8 QLinearConv saturate with full-range int8 weights on this CPU?

`math::NO_SATURATION_I8_MAX` keeps int8 weights within [-64, 64] because MLAS's AVX2 kernels add
pairs of u8 x s8 products in a saturating int16 (`vpmaddubsw`). This builds one QDQ conv per case
(pointwise, 3x3, depthwise 3x3 and 5x5) with activations near 255 and every weight at +64 or
+127 (the worst case for a pair), runs it once with graph optimization off (DequantizeLinear ->
float Conv -> QuantizeLinear, exact here since every value is an integer) and once at level
`all` (fused into QLinearConv), and prints the largest difference. A saturated pair loses
32003 units, far above the output's quantization step, so any saturation shows.

    python benches/u8s8_saturation.py     # needs onnx, numpy, onnxruntime
"""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper as h, numpy_helper as nh


def case(rng, c, k, group, wmax):
    x = rng.integers(200, 256, size=(1, c, 8, 8)).astype(np.uint8)
    w = np.full((c, c // group, k, k), wmax, np.int8)
    # Output scale: the largest possible sum over 250 steps, so the output never clips.
    ys = float(c // group * k * k * 255 * wmax / 250.0)
    nodes = [
        h.make_node("DequantizeLinear", ["xq", "one", "xz"], ["x"]),
        h.make_node("DequantizeLinear", ["wq", "one", "wz"], ["w"]),
        h.make_node("Conv", ["x", "w"], ["y"], group=group, pads=[k // 2] * 4),
        h.make_node("QuantizeLinear", ["y", "ys", "xz"], ["yq"]),
        h.make_node("DequantizeLinear", ["yq", "ys", "xz"], ["yd"]),
    ]
    inits = [
        nh.from_array(np.array(1.0, np.float32), "one"),
        nh.from_array(np.array(0, np.uint8), "xz"),
        nh.from_array(w, "wq"),
        nh.from_array(np.array(0, np.int8), "wz"),
        nh.from_array(np.array(ys, np.float32), "ys"),
    ]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("xq", T.UINT8, [1, c, 8, 8])],
                     [h.make_tensor_value_info("yd", T.FLOAT, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    out = []
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        out.append(s.run(None, {"xq": x})[0])
    return np.abs(out[0] - out[1]).max(), ys


def main():
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}")
    for wmax in (64, 127):
        for k, group, what in ((1, 1, "pointwise"), (3, 1, "3x3"), (3, 64, "depthwise 3x3"), (5, 64, "depthwise 5x5")):
            d, step = case(rng, 64, k, group, wmax)
            verdict = "exact" if d == 0 else f"OFF by {d / step:.1f} output steps"
            print(f"|w| = {wmax:3d}  {what:14s} 64 channels: {verdict}")


if __name__ == "__main__":
    main()
