#!/usr/bin/env bash
# The cost model's measured error on this host: probe the host once, predict every model
# and variant we can get at threads 1 and 2 and several batches (edgepack predict), then
# profile each (edgepack profile, plan quick) and print predicted against measured:
# median absolute error and the share within ±20% (latency) and ±10% (peak RSS), and
# the time by kernel class of the worst cases. Figures go to BENCHMARKS.md (section
# "Sizing: predicted against measured").
#
# Models: the ONNX backend `light_*` models of the test venv's `onnx` package (fixed
# batch 1), six of them again with their weights in the file (`light_*-file`), the PP-OCR cls/rec/det models from the edgepack cache (symbolic batch:
# batches 1 and 4; det at 1x3x320x320), and their fp16 and int8 variants made by
# `edgepack quantize` (random calibration: accuracy is irrelevant here, kernels are not),
# MiniLM-L6 from the cache at sequence 128 (SKIP_MINILM=1 skips it; made by
# benches/minilm_model.py when missing, with the bench venv's onnx), and Silero VAD from
# the cache (its network sits in If branches: the cost model costs the slower one, the
# 16 kHz branch the profile runs with sr=16000; SKIP_SILERO=1 skips it), and YOLOv8n
# from the `nudenet` wheel (SKIP_YOLO=1 skips it).
#
# The summary breaks the latency error down by kernel class: a least-squares fit of one
# factor per class, measured ~ sum over classes of factor x predicted time of that class
# (relative errors, ridge towards 1), says which classes are under- (factor > 1) or
# over-predicted (< 1) across the cases, and how much of the error each explains.
# It ends with the host's drift over the run: the first case at 1 thread, profiled right
# after the probe and again after the last case (not in predict-only mode).
#
# usage: benches/predict_accuracy.sh [WORKDIR]
#   env: EDGEPACK (a prebuilt binary; default: cargo build, target/debug/edgepack; the
#        timed region is ONNX Runtime's Run either way), THREADS (1,2), BATCHES (1,4),
#        ROUNDS (processes per profiled configuration, 5), PROBE_TIME (60s), LIGHT (glob of light models, default all; LIGHT=none skips
#        them), LIGHT_FILE (light conv nets also profiled with their weights in the file,
#        benches/light_weights_in_file.py; LIGHT_FILE=none skips them), SKIP_PPOCR=1, ONLY (a grep pattern over case names), DEVICE (an existing
#        device profile: skip the probe), MEMORY_ONLY=1 (score peak RSS only: profiles
#        measured where timings mean nothing, e.g. benches/arm_memory.sh's emulated board),
#        CASES_ONLY=1 (write WORKDIR/cases.txt and the quantized variants, then stop:
#        name|model|shape flags|batches|session config|profile-only flags)
#
# Predict-only mode (cross-device): `DEVICE=dev.json PROFILES=DIR` skips probing and
# profiling: it predicts every case from the device profile alone and scores against the
# profiles measured on that device (`DIR/<case>.profile.json`, the work folder of a run of
# this script there; its quantized variants are used when present, else made here). The
# cost model is a pure function of the device profile and the model, so this is what a
# prediction for that device would have said. With HOST_PROFILES (this host's work folder
# of the same cases) and HOST_COMPUTE / DEVICE_COMPUTE (the two machines' relative_compute),
# each row also carries the scalar method's prediction: host p50 x HOST_COMPUTE /
# DEVICE_COMPUTE, host peak RSS unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d -t edgepack-predict-XXXXXX)}
mkdir -p "$WORK"
CACHE=${EDGEPACK_CACHE:-$HOME/.cache/edgepack}
if [ -z "${EDGEPACK:-}" ]; then
  cargo build --quiet --bin edgepack
  EDGEPACK=${CARGO_TARGET_DIR:-target}/debug/edgepack
fi
THREADS=${THREADS:-1,2}
# Processes per measured configuration. On this project's 2-vCPU VM a process at 2 threads
# runs in one of two regimes (PP-OCR rec: about 14 ms in most processes, 30 ms in some,
# with ONNX Runtime's own Python loop too; BENCHMARKS.md, "Sizing: the 2-thread ground
# truth is bimodal"). With the quick plan's 2 rounds one slow process moves the pooled
# median anywhere between the regimes; 5 rounds put it in the regime most processes see.
ROUNDS=${ROUNDS:-5}
BATCHES=${BATCHES:-1,4}
echo "work folder: $WORK" >&2

if [ -n "${PROFILES:-}" ] && [ -z "${DEVICE:-}" ]; then
  echo "PROFILES needs DEVICE (the device profile probed where the profiles were measured)" >&2
  exit 2
fi
if [ -n "${CASES_ONLY:-}" ]; then
  :
elif [ -n "${DEVICE:-}" ]; then
  cp "$DEVICE" "$WORK/device.json"
else
  "$EDGEPACK" probe -o "$WORK/device.json" --threads "$THREADS" --max-time "${PROBE_TIME:-60s}" >"$WORK/probe.txt"
fi

# name|path|shape flags|batches|session-config|flags for profile only
CASES="$WORK/cases.txt"
: >"$CASES"
LIGHT_DIR=$(ls -d "$CACHE"/test-venv/lib/python3*/site-packages/onnx/backend/test/data/light 2>/dev/null | head -1 || true)
if [ -n "$LIGHT_DIR" ] && [ "${LIGHT:-}" != none ]; then
  for m in "$LIGHT_DIR"/${LIGHT:-light_*}.onnx; do
    echo "$(basename "$m" .onnx)|$m||1||" >>"$CASES"
  done
fi
# The light conv nets with their weights in the file, as a real export carries them (the
# light models make every weight with ConstantOfShape, which ONNX Runtime folds and merges:
# benches/light_weights_in_file.py says why). LIGHT_FILE (a list of light model names,
# default below; LIGHT_FILE=none skips them). Made with the test venv's onnx.
LIGHT_FILE=${LIGHT_FILE:-densenet121 resnet50 inception_v1 squeezenet shufflenet bvlc_alexnet}
LIGHT_PY="$CACHE/test-venv/bin/python"
if [ -n "$LIGHT_DIR" ] && [ "${LIGHT:-}" != none ] && [ "$LIGHT_FILE" != none ] && [ -x "$LIGHT_PY" ]; then
  for l in $LIGHT_FILE; do
    m="$LIGHT_DIR/light_$l.onnx" f="$WORK/light_$l-file.onnx"
    [ -f "$m" ] || continue
    if [ -n "${PROFILES:-}" ] && [ -f "$PROFILES/light_$l-file.onnx" ] && [ ! -f "$f" ]; then
      cp "$PROFILES/light_$l-file.onnx" "$f"
    fi
    if [ -f "$f" ] || "$LIGHT_PY" benches/light_weights_in_file.py "$m" "$f" 2>"$WORK/light_$l-file.err"; then
      echo "light_$l-file|$f||1||" >>"$CASES"
    else
      echo "light_weights_in_file.py $l failed: $(tail -1 "$WORK/light_$l-file.err")" >&2
    fi
  done
fi
PPOCR="$CACHE/models/ppocr"
if [ -z "${SKIP_PPOCR:-}" ]; then
  if [ ! -f "$PPOCR/ch_ppocr_mobile_v2.0_cls_infer.onnx" ]; then
    "$EDGEPACK" demo --model ppocr-cls >/dev/null 2>&1 || true
  fi
  for spec in "cls:ch_ppocr_mobile_v2.0_cls_infer.onnx:x=1x3x48x192:$BATCHES:48 192" \
              "rec:ch_PP-OCRv4_rec_infer.onnx:x=1x3x48x320:$BATCHES:48 320" \
              "det:ch_PP-OCRv4_det_infer.onnx:x=1x3x320x320:1:320 320"; do
    IFS=: read -r name file shape batches hw <<<"$spec"
    m="$PPOCR/$file"
    [ -f "$m" ] || continue
    echo "ppocr-$name|$m|--shape $shape|$batches||" >>"$CASES"
    for mode in fp16 int8; do
      q="$WORK/ppocr-$name-$mode.onnx"
      # Predict-only: the variant the device profiled, where its work folder has it.
      if [ -n "${PROFILES:-}" ] && [ -f "$PROFILES/ppocr-$name-$mode.onnx" ] && [ ! -f "$q" ]; then
        cp "$PROFILES/ppocr-$name-$mode.onnx" "$q"
      fi
      # Random calibration inputs of the profiled shape (the input model's --shape grammar).
      if [ -f "$q" ] || "$EDGEPACK" quantize "$m" --mode "$mode" -o "$q" --shape "$shape" >/dev/null 2>"$WORK/quantize-$name-$mode.err"; then
        echo "ppocr-$name-$mode|$q|--shape $shape|$batches||" >>"$CASES"
      else
        echo "quantize $name $mode failed: $(tail -1 "$WORK/quantize-$name-$mode.err")" >&2
      fi
    done
  done
fi

# The transformer: MiniLM-L6 (the cached sentence encoder of
# benches/quantize_transformer.sh) at sequence 128.
MINILM="$CACHE/models/minilm/all-MiniLM-L6-v2.onnx"
if [ -z "${SKIP_MINILM:-}" ] && [ ! -f "$MINILM" ] && [ -x "$CACHE/bench-tf-venv/bin/python" ]; then
  "$CACHE/bench-tf-venv/bin/python" benches/minilm_model.py --cache "$CACHE" >/dev/null 2>"$WORK/minilm-model.err" \
    || echo "benches/minilm_model.py failed: $(tail -1 "$WORK/minilm-model.err")" >&2
fi
if [ -z "${SKIP_MINILM:-}" ] && [ -f "$MINILM" ]; then
  echo "minilm|$MINILM|--dim sequence=128|$BATCHES||" >>"$CASES"
fi

# Silero VAD (cached by benches/silero_vad.sh): one 36 ms chunk at 16 kHz, batch 1, and
# four streams at once (batch 4: its state's batch axis is the second, so it is a case of
# its own with both shapes given; --batch 4 sets the input's leading dim).
SILERO="$CACHE/models/silero-vad/silero_vad.onnx"
if [ -z "${SKIP_SILERO:-}" ] && [ -f "$SILERO" ]; then
  echo "silero-vad|$SILERO|--shape input=1x576 --shape state=2x1x128|1||--input-range sr=16000..16000" >>"$CASES"
  echo "silero-vad-b4|$SILERO|--shape input=4x576 --shape state=2x4x128|4||--input-range sr=16000..16000" >>"$CASES"
fi

# A detector the cost model was not tuned on: YOLOv8n at 320x320 (NudeNet 3.4.2's
# `320n.onnx`, from its PyPI wheel, pinned; dynamic batch, height and width; SiLU convs,
# a decoupled head with Range/Expand shape arithmetic). SKIP_YOLO=1 skips it.
YOLO="$CACHE/models/nudenet-3.4.2/320n.onnx"
if [ -z "${SKIP_YOLO:-}" ] && [ ! -f "$YOLO" ]; then
  (python3 -m pip download -q --no-deps --only-binary=:all: nudenet==3.4.2 -d "$CACHE/wheels" \
    && unzip -o -q -j "$CACHE/wheels/nudenet-3.4.2-py3-none-any.whl" nudenet/320n.onnx -d "$(dirname "$YOLO")") \
    >"$WORK/yolo-model.err" 2>&1 || echo "fetching nudenet 3.4.2 failed: $(tail -1 "$WORK/yolo-model.err")" >&2
fi
if [ -z "${SKIP_YOLO:-}" ] && [ -f "$YOLO" ]; then
  echo "yolov8n|$YOLO|--shape images=1x3x320x320|$BATCHES||" >>"$CASES"
fi

# CASES_ONLY=1: the case list and the quantized variants are all that is wanted (another
# script profiles them elsewhere, e.g. benches/arm_memory.sh on its emulated board).
[ -z "${CASES_ONLY:-}" ] || exit 0

ROWS="$WORK/rows.jsonl"
[ -n "${KEEP_ROWS:-}" ] || : >"$ROWS"

# Host drift: the first case, 1 thread, its first batch, profiled right after the probe
# and again after the last case. On a shared VM the host's speed moves over minutes; the
# ratio says how much of a run's latency error is the host's (the probe and the profiles
# were taken at different speeds) and not the cost model's.
sentinel() {
  local name path shapeflags batches sc pflags
  IFS='|' read -r name path shapeflags batches sc pflags <"$CASES"
  # shellcheck disable=SC2086
  "$EDGEPACK" profile "$path" --plan quick --rounds "$ROUNDS" --threads 1 $shapeflags $pflags --json "$WORK/sentinel.$1.json" >/dev/null 2>"$WORK/sentinel.$1.err" \
    && echo "$name" >"$WORK/sentinel.name" || rm -f "$WORK/sentinel.$1.json"
}
[ -n "${PROFILES:-}" ] || sentinel start
while IFS='|' read -r name path shapeflags batches sc pflags; do
  if [ -n "${ONLY:-}" ] && ! grep -q -- "${ONLY}" <<<"$name"; then continue; fi
  echo "== $name" >&2
  prof="$WORK/$name.profile.json"
  if [ -n "${PROFILES:-}" ]; then
    if [ ! -f "$PROFILES/$name.profile.json" ]; then
      echo "no profile of $name in $PROFILES: skipped" >&2
      continue
    fi
    cp "$PROFILES/$name.profile.json" "$prof"
    grep -q '"batch": null' "$prof" && batches=1
  # shellcheck disable=SC2086
  elif ! "$EDGEPACK" profile "$path" --plan quick --rounds "$ROUNDS" --threads "$THREADS" --batch "$batches" $shapeflags $pflags --json "$prof" >/dev/null 2>"$WORK/$name.profile.err"; then
    # Fixed-batch models refuse --batch: profile them without it.
    # shellcheck disable=SC2086
    "$EDGEPACK" profile "$path" --plan quick --rounds "$ROUNDS" --threads "$THREADS" $shapeflags $pflags --json "$prof" >/dev/null 2>"$WORK/$name.profile.err" || { echo "profile $name failed: $(tail -1 "$WORK/$name.profile.err")" >&2; continue; }
    batches=1
  fi
  for t in ${THREADS//,/ }; do
    for b in ${batches//,/ }; do
      pred="$WORK/$name.t$t.b$b.pred.json"
      batchflag="--batch $b"
      grep -q '"batch": null' "$prof" && batchflag=""
      # shellcheck disable=SC2086
      if "$EDGEPACK" predict "$path" --device "$WORK/device.json" --threads "$t" $batchflag $shapeflags --json >"$pred" 2>"$pred.err"; then
        host_prof=""
        [ -n "${HOST_PROFILES:-}" ] && host_prof="$HOST_PROFILES/$name.profile.json"
        python3 benches/predict_accuracy.py row "$name" "$t" "$b" "$pred" "$prof" "$host_prof" "${HOST_COMPUTE:-}" "${DEVICE_COMPUTE:-}" >>"$ROWS"
      else
        echo "predict $name t$t b$b failed: $(tail -1 "$pred.err")" >&2
      fi
    done
  done
done <"$CASES"
[ -n "${PROFILES:-}" ] || sentinel end
python3 benches/predict_accuracy.py summary "$ROWS"
if [ -f "$WORK/sentinel.start.json" ] && [ -f "$WORK/sentinel.end.json" ]; then
  python3 benches/predict_accuracy.py drift "$(cat "$WORK/sentinel.name")" "$WORK/sentinel.start.json" "$WORK/sentinel.end.json"
fi
