#!/usr/bin/env bash
# The cost model's memory on a second architecture: probe an emulated ARM64 board
# (scripts/arm-device.sh: Debian's arm64 kernel in qemu, a Cortex-A72 or A76 as the guest
# sees it), profile the cases of benches/predict_accuracy.sh there, then predict each case
# here from that board's probe alone and score peak RSS against the board's measurement.
# The same profiles also score the derived profile the built-in target ships
# (hardware/raspberry-pi-4-4gb.device.json by default), whose memory lines come from the
# x86-64 reference probe.
#
# MEMORY ONLY. Under full-system emulation every ARM instruction is translated on this x86
# host, so the board's timings say nothing about a real board and are not scored. Resident
# memory is the guest kernel's own accounting of the aarch64 ONNX Runtime's allocations,
# which emulation does not change: that is what this checks.
#
#   benches/arm_memory.sh [WORKDIR]       (default target/arm-memory; ~25-40 min)
#   env: EDGEPACK (host binary; default target/release/edgepack, built when missing),
#        CPU (cortex-a72), NO_CROSS=1 (use the aarch64 edgepack already built by
#        scripts/cross-aarch64.sh), LIGHT (light models, default
#        "resnet50 squeezenet inception_v1 densenet121 shufflenet bvlc_alexnet"),
#        with their `-file` variants (predict_accuracy.sh's LIGHT_FILE), ONLY (a grep pattern
#        over case names: profile only those on the board),
#        DERIVED (the derived profile to score, default hardware/raspberry-pi-4-4gb.device.json),
#        TIMEOUT_S (the board's time limit, 5400)
#
# Output: WORK/profiles (the board's device.json and <case>.profile.json), WORK/probe.txt
# and WORK/derived.txt (predict_accuracy.sh's summaries, MEMORY_ONLY).
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEPACK_CACHE="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"
CACHE=$EDGEPACK_CACHE
WORK=${1:-target/arm-memory}
CPU=${CPU:-cortex-a72}
DERIVED=${DERIVED:-hardware/raspberry-pi-4-4gb.device.json}
LIGHT=${LIGHT:-resnet50 squeezenet inception_v1 densenet121 shufflenet bvlc_alexnet}
t0=$(date +%s)
say() { echo "== [$(( $(date +%s) - t0 )) s] $*" >&2; }

EP=${EDGEPACK:-target/release/edgepack}
[ -x "$EP" ] || cargo build --release --quiet --bin edgepack
[ "${NO_CROSS:-}" = 1 ] || { say "cross-compiling edgepack for aarch64"; bash scripts/cross-aarch64.sh --aarch64 >&2; }
ARM_EP=target/cross/aarch64-unknown-linux-gnu/release/edgepack
[ -x "$ARM_EP" ] || { echo "arm_memory.sh: no aarch64 edgepack at $ARM_EP (run scripts/cross-aarch64.sh --aarch64)" >&2; exit 2; }
"$EP" runtime install --platform linux-aarch64 >&2
ORT_ARM=$(ls "$CACHE"/runtimes/linux-aarch64/*/libonnxruntime.so.* 2>/dev/null | head -1)
[ -n "$ORT_ARM" ] || { echo "arm_memory.sh: no aarch64 ONNX Runtime under $CACHE/runtimes/linux-aarch64" >&2; exit 2; }

rm -rf "$WORK"
board="$WORK/board" prof="$WORK/profiles"
mkdir -p "$board/models" "$prof"
cp "$ARM_EP" "$board/edgepack"
# The file keeps its versioned name: edgepack reads the ONNX Runtime version from it.
cp "$ORT_ARM" "$board/"
basename "$ORT_ARM" >"$board/ort-name"

# The cases are predict_accuracy.sh's own (its list, shapes and quantized variants, made in
# the profiles folder where its predict-only mode takes the variants from), at batch 1 and
# one thread, the light models narrowed to LIGHT. On the board: name|model file|flags.
CASES_ONLY=1 BATCHES=1 LIGHT="light_*" EDGEPACK="$EP" bash benches/predict_accuracy.sh "$prof" 2>"$WORK/cases.err" \
  || { echo "arm_memory.sh: listing the cases failed: $(tail -1 "$WORK/cases.err")" >&2; exit 1; }
cases="$board/cases.txt"
: >"$cases"
while IFS='|' read -r name path shapeflags _batches sc pflags; do
  base=${name#light_}
  case "$name" in light_*) grep -qw "${base%-file}" <<<"$LIGHT" || continue ;; esac
  if [ -n "${ONLY:-}" ] && ! grep -q -- "$ONLY" <<<"$name"; then continue; fi
  [ -z "$sc" ] || { echo "arm_memory.sh: $name: session config is not carried to the board" >&2; exit 1; }
  cp "$path" "$board/models/$name.onnx"
  echo "$name|$name.onnx|$shapeflags $pflags" >>"$cases"
done <"$prof/cases.txt"

# A plan that measures as little as a profile can: peak RSS does not need many runs, and
# every emulated run is slow.
cat >"$board/plan.toml" <<'PLAN'
description = "Memory under emulation: one process, three measured runs."
[sizes]
batch = [1]
[run]
threads = [1]
execution_providers = ["cpu"]
graph_optimization_level = "all"
[measure]
rounds = 1
warmup_iterations = 1
min_iterations = 3
max_iterations = 3
min_time_s = 0.0
max_time_s = 0.001
target_ci_rel = 0.5
stability_tolerance = 0.99
[limits]
timeout_s = 1800
PLAN

cat >"$board/job.sh" <<'JOB'
# Runs on the emulated board: the tiny probe (its memory lines are what is used), then a
# profile of every case; each result goes to /out as it is made.
export ORT_DYLIB_PATH="/data/$(cat /data/ort-name)"
grep -m1 "CPU part" /proc/cpuinfo > /out/cpu.txt; grep -m1 Features /proc/cpuinfo >> /out/cpu.txt
# The probe's kernel models have a time limit sized for real devices (its memory models,
# untimed, have ten minutes each): one retry in case the emulating host was too busy.
/data/edgepack probe --tiny --threads 1 --max-time 60s -o /out/device.json > /out/probe.log 2>&1 \
  || /data/edgepack probe --tiny --threads 1 --max-time 60s -o /out/device.json >> /out/probe.log 2>&1
echo "probe $?" >> /out/rc.txt
while IFS='|' read -r name file flags; do
  # Batch 1 where the batch is symbolic; fixed-batch models refuse --batch (as in
  # predict_accuracy.sh): profile them without it.
  # shellcheck disable=SC2086
  /data/edgepack profile "/data/models/$file" --plan /data/plan.toml --threads 1 --batch 1 $flags \
    --json "/out/$name.profile.json" > "/out/$name.profile.log" 2>&1 \
  || /data/edgepack profile "/data/models/$file" --plan /data/plan.toml --threads 1 $flags \
    --json "/out/$name.profile.json" > "/out/$name.profile.log" 2>&1
  echo "$name $?" >> /out/rc.txt
done < /data/cases.txt
cat /out/rc.txt
JOB

say "booting the emulated $CPU board: $(wc -l <"$cases") cases"
set +e
bash scripts/arm-device.sh --cpu "$CPU" --mem-mb 4096 --timeout-s "${TIMEOUT_S:-5400}" "$board" "$WORK/board-out"
brc=$?
set -e
say "board finished (status $brc)"
cp "$WORK"/board-out/*.json "$WORK/board-out/rc.txt" "$WORK/board-out/cpu.txt" "$prof/" 2>/dev/null || true
[ -f "$prof/device.json" ] || { echo "arm_memory.sh: the board wrote no probe; see $WORK/board-out/console.log" >&2; exit 1; }
cat "$prof/cpu.txt" >&2

score() {
  DEVICE="$1" PROFILES="$prof" THREADS=1 BATCHES=1 MEMORY_ONLY=1 EDGEPACK="$EP" \
    bash benches/predict_accuracy.sh "$2" 2>"$2.err"
}
say "predicting from the board's own probe"
score "$prof/device.json" "$WORK/score-probe" | tee "$WORK/probe.txt"
say "predicting from the derived profile $DERIVED"
score "$DERIVED" "$WORK/score-derived" | tee "$WORK/derived.txt"
