#!/usr/bin/env bash
# Cross-device check of the cost model: capture the ground truth on a second x86-64
# machine that has no network (a probe of that machine and profiles of every case of
# benches/predict_accuracy.sh measured there), then score predictions made from that
# machine's probe alone, here, as often as the cost model changes (`predict` is a pure
# function of the device profile and the model).
#
#   benches/cross_device.sh pack DIR      here: a release binary, ONNX Runtime, the PP-OCR
#                                         models, the ONNX backend light models and the
#                                         fp16/int8 variants, in DIR/pack.tar.gz
#   benches/cross_device.sh capture TAR OUT
#                                         there: unpack into $EDGEPACK_CACHE (default
#                                         ~/.cache/edgepack; the runtime record holds
#                                         absolute paths, so the same home as here), run
#                                         the probe and the profiles, write OUT/capture.tar.gz
#                                         (device.json, *.profile.json, rows.jsonl, lscpu)
#
# Scoring the capture here: DEVICE=work/device.json PROFILES=work benches/predict_accuracy.sh
# (see that script). The figures go to BENCHMARKS.md, "Sizing: predicted against measured".
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${EDGEPACK_CACHE:-$HOME/.cache/edgepack}

case "${1:-}" in
pack)
  DIR=${2:?usage: cross_device.sh pack DIR}
  mkdir -p "$DIR/stage/work"
  BIN=${EDGEPACK:-target/release/edgepack}
  [ -x "$BIN" ] || cargo build --release --quiet --bin edgepack
  cp "$BIN" "$DIR/stage/edgepack"
  strip "$DIR/stage/edgepack" 2>/dev/null || true
  # Variants made here with the same commands predict_accuracy.sh would run there.
  for spec in "cls:ch_ppocr_mobile_v2.0_cls_infer.onnx:x=1x3x48x192" \
              "rec:ch_PP-OCRv4_rec_infer.onnx:x=1x3x48x320" \
              "det:ch_PP-OCRv4_det_infer.onnx:x=1x3x320x320"; do
    IFS=: read -r name file shape <<<"$spec"
    for mode in fp16 int8; do
      q="$DIR/stage/work/ppocr-$name-$mode.onnx"
      [ -f "$q" ] || "$BIN" quantize "$CACHE/models/ppocr/$file" --mode "$mode" -o "$q" --shape "$shape" >/dev/null
    done
  done
  light=$(cd "$CACHE" && ls -d test-venv/lib/python3*/site-packages/onnx/backend/test/data/light | head -1)
  tar -C "$CACHE" -czf "$DIR/stage/cache.tar.gz" runtimes/linux-x86_64 models/ppocr "$light"
  tar -C "$DIR/stage" -czf "$DIR/pack.tar.gz" edgepack cache.tar.gz work
  rm -rf "$DIR/stage"
  ls -l "$DIR/pack.tar.gz"
  ;;
capture)
  TAR=${2:?usage: cross_device.sh capture TAR OUT}
  OUT=${3:?usage: cross_device.sh capture TAR OUT}
  STAGE=$(mktemp -d)
  tar -C "$STAGE" -xzf "$TAR"
  mkdir -p "$CACHE"
  tar -C "$CACHE" -xzf "$STAGE/cache.tar.gz"
  WORK="$STAGE/work"
  { uname -a; lscpu; nproc; } >"$WORK/machine.txt" 2>&1 || true
  # The bench writes rows as it goes; a time limit still leaves what was measured.
  EDGEPACK="$STAGE/edgepack" timeout "${CAPTURE_TIME_S:-420}" \
    benches/predict_accuracy.sh "$WORK" >"$WORK/summary.txt" 2>"$WORK/bench.err" || echo "bench stopped: $?" >>"$WORK/bench.err"
  tar -C "$STAGE" -czf "$OUT/capture.tar.gz" --exclude='*.onnx' work
  cat "$WORK/summary.txt" "$WORK/bench.err" | tail -60
  ;;
*)
  sed -n 2,22p "$0"
  exit 2
  ;;
esac
