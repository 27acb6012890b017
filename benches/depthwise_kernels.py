"""Does a depthwise conv's time follow its multiply-accumulates? (issue 13; BENCHMARKS.md,
"Sizing: 5x5 depthwise convs").

Times chains of 4 depthwise convs, 3x3 and 5x5, on the same tensors (PP-OCR cls's sizes and a
large map) at 1 thread through ONNX Runtime (300 runs after 50, best median of 3 passes),
and prints the time per conv with its MACs. The cost model's `DEPTHWISE_OUTPUT_MACS` comes
from these ratios.

    ~/.cache/edgepack/bench-tf-venv/bin/python benches/depthwise_kernels.py   # onnx, numpy, onnxruntime
"""
import onnxruntime as ort, numpy as np, time
from onnx import helper as h, TensorProto as T, numpy_helper as nh
ort.set_default_logger_severity(3)
def chain(c, hh, ww, k, n=4):
    nodes, inits, x = [], [], "x"
    for i in range(n):
        inits += [nh.from_array((np.random.rand(c, 1, k, k)-0.5).astype(np.float32)*0.1, f"w{i}"), nh.from_array(np.zeros(c, np.float32), f"b{i}")]
        nodes.append(h.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"y{i}"], group=c, kernel_shape=[k,k], pads=[k//2]*4)); x=f"y{i}"
    gr = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1,c,hh,ww])], [h.make_tensor_value_info(x, T.FLOAT, [1,c,hh,ww])], inits)
    return h.make_model(gr, opset_imports=[h.make_opsetid("",13)]).SerializeToString()
res={}
for rep in range(3):
  for (c,hh,ww) in [(96,6,24),(208,3,12),(32,12,48),(128,112,112)]:
    for k in (3,5):
        so=ort.SessionOptions(); so.intra_op_num_threads=1
        s=ort.InferenceSession(chain(c,hh,ww,k), so, providers=["CPUExecutionProvider"])
        x=np.random.rand(1,c,hh,ww).astype(np.float32)
        for _ in range(50): s.run(None,{"x":x})
        ts=[]
        for _ in range(300):
            t=time.perf_counter(); s.run(None,{"x":x}); ts.append(time.perf_counter()-t)
        res.setdefault((c,hh,ww,k),[]).append(np.median(ts)/4*1e6)
for (c,hh,ww,k),v in res.items(): print(f"dw {c}x{hh}x{ww} k{k}: {min(v):.1f} us per conv; MACs {c*hh*ww*k*k/1e3:.0f}K")
