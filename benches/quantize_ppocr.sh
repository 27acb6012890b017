#!/usr/bin/env bash
# Quantizer benchmark: edgepack vs ONNX Runtime's Python quantizer on PP-OCR cls/rec/det.
# Creates its own venv (onnxruntime==1.31.1, onnx, numpy, pillow, and ml_dtypes, which ORT's
# quantizer imports), builds edgepack in release mode and runs benches/quantize_ppocr.py. Extra arguments go to the script
# (e.g. --only cls --calib 32 --eval 16 --method percentile).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${EDGEPACK_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edgepack/bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnxruntime==1.31.1 onnx numpy pillow ml_dtypes
fi
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)}"
(cd "$here" && cargo build --release --quiet)
bin="${CARGO_TARGET_DIR:-$here/target}/release/edgepack"
exec "$venv/bin/python" "$here/benches/quantize_ppocr.py" --edgepack "$bin" "$@"
