#!/usr/bin/env bash
# Silero VAD (the `silero-vad` wheel, as edgepack::zoo::SILERO_VAD pins it) through
# `edgepack quantize --mode int8-dynamic` (its LSTMs live inside If branches), `compare`
# and `profile`; then `--mode int8-weight`, `int8` and `fp16`, which reach the convs inside
# the branches (latency ratio and accuracy from each quantize run's own report). Samples: synthetic 16 kHz chunks (voiced harmonic tones and near-silence,
# as zoo::synthetic_vad_samples makes them), one .npz each (input [1,576], state zeros
# [2,1,128], sr 16000). EDGEPACK_BIN: the binary to measure (default target/release).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EDGEPACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgepack}"
bin="${EDGEPACK_BIN:-$here/target/release/edgepack}"
py="${EDGEPACK_BENCH_PYTHON:-$cache/bench-tf-venv/bin/python}"
model="$cache/models/silero-vad/silero_vad.onnx"
if [ ! -f "$model" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: silero-vad==6.2.3 -d "$cache/wheels"
  mkdir -p "$(dirname "$model")"
  unzip -o -q -j "$cache/wheels/silero_vad-6.2.3-py3-none-any.whl" silero_vad/data/silero_vad.onnx -d "$(dirname "$model")"
fi
echo "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3  $model" | sha256sum -c -
work="$(mktemp -d)"
"$py" - "$work/samples" <<'PY'
import os, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out)
for i in range(16):
    rng = np.random.default_rng(i)
    t = np.arange(576) / 16000
    if i % 2 == 0:
        f0, gain = rng.uniform(100, 220), rng.uniform(0.1, 0.5)
        env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 7))
        x = gain * env * tone + 0.01 * rng.uniform(-1, 1, 576)
    else:
        x = 0.003 * rng.uniform(-1, 1, 576)
    np.savez(os.path.join(out, f"{i:03}.npz"), input=x[None].astype(np.float32),
             state=np.zeros((2, 1, 128), np.float32), sr=np.array(16000, np.int64))
PY
mkdir -p "$work/calib" "$work/eval"
for f in "$work"/samples/*.npz; do n=$(basename "$f" .npz); if [ $((10#$n)) -lt 8 ]; then mv "$f" "$work/calib/"; else mv "$f" "$work/eval/"; fi; done
flags=(--shape input=1x576 --shape state=2x1x128 --input-range sr=16000..16000)
/usr/bin/time -f "quantize wall %e s" "$bin" quantize "$model" -o "$work/vad.int8-dynamic.onnx" \
  --mode int8-dynamic --calibration "$work/calib" --eval "$work/eval" --report "$work/q.json"
"$bin" compare "$model" "$work/vad.int8-dynamic.onnx" --inputs "$work/eval"
"$bin" profile "$model" "${flags[@]}" --threads 1 --plan quick
"$bin" profile "$work/vad.int8-dynamic.onnx" "${flags[@]}" --threads 1 --plan quick
for mode in int8-weight int8 fp16; do
  "$bin" quantize "$model" -o "$work/vad.$mode.onnx" --mode "$mode" \
    --calibration "$work/calib" --eval "$work/eval" --report "$work/$mode.json"
done
