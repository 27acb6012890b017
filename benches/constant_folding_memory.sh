#!/usr/bin/env bash
# What constant folding leaves resident when it makes weights from loaded ones (the
# cost model's constant-folding line; BENCHMARKS.md, "Sizing memory: fp16 casts,
# per-image convs, constant folding"). Needs the Silero VAD model (benches/silero_vad.sh
# caches it) and the test venv (onnxruntime, onnx, numpy: scripts/test.sh makes it).
#   benches/constant_folding_memory.sh [WORKDIR]     (about 1 minute)
#   env: EDGEPACK (default target/release/edgepack), EDGEPACK_TEST_PYTHON
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"
ep="${EDGEPACK:-target/release/edgepack}"
[ -x "$ep" ] || cargo build --release --quiet --bin edgepack
py="${EDGEPACK_TEST_PYTHON:-$cache/test-venv/bin/python}"
silero="$cache/models/silero-vad/silero_vad.onnx"
[ -f "$silero" ] || { echo "constant_folding_memory.sh: no $silero (run benches/silero_vad.sh once)" >&2; exit 2; }
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$("$py" -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')"/capi/libonnxruntime.so.1.* | head -1)}"
export ORT_DYLIB_PATH
"$py" benches/constant_folding_memory.py "$ep" "$silero" "${1:-target/constant-folding}"
