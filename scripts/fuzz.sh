#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every reader that takes files from
# strangers. Each target runs for FUZZ_SECONDS (default 60) from a corpus seeded with real
# files; a crash stops nothing else, is saved under fuzz/artifacts/<target>/ and makes the
# script exit 1. Usage:
#   scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh model_read bundle_verify
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain, or a stable one
# with RUSTC_BOOTSTRAP=1 (set here). Environment:
#   FUZZ_SECONDS   time per target (default 60)
#   FUZZ_JOBS      parallel libFuzzer jobs per target (default 1)
#   EDGEPACK_BIN   an edgepack binary for making the package seeds (default: cargo build)
#   EDGEPACK_CACHE where the real models are cached (default ~/.cache/edgepack)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
cache="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"
all_targets=(model_read tensor_read bundle_verify config_parse quantize_rewrite)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

echo "== building fuzz targets (release, ASan)" >&2
cargo fuzz build -O >&2
fuzz_bin_dir="${CARGO_TARGET_DIR:-$root/fuzz/target}/x86_64-unknown-linux-gnu/release"

if [ -z "${EDGEPACK_BIN:-}" ]; then
  cargo build --quiet --bin edgepack >&2
  EDGEPACK_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/edgepack"
fi

corpus="$root/fuzz/corpus"
seeds="$root/fuzz/seeds-real"
rm -rf "$seeds"
mkdir -p "$seeds"
echo "== seeding $corpus" >&2
# Synthetic seeds: builder models, tensors of every dtype, a full profile JSON.
"$fuzz_bin_dir/seed_corpus" "$corpus"

prefixed() { # prefixed BYTE SRC DEST: DEST = one selector byte + SRC
  printf "\\x$1" >"$3"
  cat "$2" >>"$3"
}

# Real models: the PP-OCR classifier (the detector and recogniser are 5-11 MB; libFuzzer
# mutates inputs that large too slowly to help) and ONNX backend test models, including
# the ones with If/Loop/Scan subgraphs and sequences.
mkdir -p "$corpus/model_read" "$corpus/tensor_read" "$corpus/bundle_verify" "$corpus/config_parse" \
  "$corpus/quantize_rewrite"
ppocr="$cache/models/ppocr"
[ -f "$ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" ] &&
  cp "$ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" "$corpus/model_read/ppocr_cls.onnx"
backend="$cache/onnx-backend-test-data/1.17.0/node"
if [ -d "$backend" ]; then
  for t in test_add test_conv_with_strides_padding test_gemm_default_no_bias test_if test_if_seq \
    test_loop11 test_loop13_seq test_scan9_sum test_matmul_2d test_reshape_extended_dims \
    test_constantofshape_float_ones test_cast_FLOAT_to_FLOAT16 test_resize_upsample_scales_linear \
    test_split_variable_parts_1d_opset18 test_qlinearmatmul_2D_uint8_float32 \
    test_dequantizelinear test_sequence_insert_at_back test_optional_get_element_sequence \
    test_string_concat test_softmax_axis_1 test_batchnorm_example test_lstm_defaults; do
    [ -d "$backend/$t" ] || continue
    cp "$backend/$t/model.onnx" "$corpus/model_read/$t.onnx"
    for pbf in "$backend/$t"/test_data_set_0/*.pb; do
      [ -f "$pbf" ] && prefixed 01 "$pbf" "$corpus/tensor_read/${t}_$(basename "$pbf")"
    done
  done
fi

# The quantizer's rewrites start from the same models (builder conv nets and MLPs, the
# classifier, the backend models).
cp -n "$corpus/model_read/"* "$corpus/quantize_rewrite/" 2>/dev/null || true

# Real .npy files written by `edgepack run` (inputs and outputs of the classifier), and
# an .npz holding them.
if [ -f "$ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" ] &&
  "$EDGEPACK_BIN" run "$ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx" --shape x=1x3x48x192 \
    --save-inputs "$seeds/npy" --output-dir "$seeds/npy" >/dev/null 2>&1; then
  for f in "$seeds"/npy/*.npy; do prefixed 00 "$f" "$corpus/tensor_read/run_$(basename "$f")"; done
  (cd "$seeds/npy" && zip -q -0 "$seeds/run.npz" ./*.npy && zip -q "$seeds/run_deflated.npz" ./*.npy)
  prefixed 02 "$seeds/run.npz" "$corpus/tensor_read/run.npz"
  prefixed 02 "$seeds/run_deflated.npz" "$corpus/tensor_read/run_deflated.npz"
else
  echo "note: no ONNX Runtime or PP-OCR model; .npy seeds are synthetic only" >&2
fi

# Real config files.
for f in profiles/*.toml; do prefixed 00 "$f" "$corpus/config_parse/profile_$(basename "$f")"; done
for f in hardware/*.toml; do prefixed 01 "$f" "$corpus/config_parse/hardware_$(basename "$f")"; done
for f in examples/*.toml; do prefixed 02 "$f" "$corpus/config_parse/policy_$(basename "$f")"; done

# Real packages from `edgepack package`, unsigned and signed. Sample inputs are given so
# no runtime is needed for the self-test's expected outputs when ORT is absent.
small="$backend/test_add/model.onnx"
if [ -f "$small" ]; then
  if "$EDGEPACK_BIN" package "$small" -o "$seeds/add.edgepkg" >/dev/null 2>&1; then
    cp "$seeds/add.edgepkg" "$corpus/bundle_verify/add.edgepkg"
    "$EDGEPACK_BIN" keygen -o "$seeds/key" >/dev/null 2>&1 &&
      "$EDGEPACK_BIN" package "$small" -o "$seeds/add_signed.edgepkg" --sign "$seeds/key" \
        --lineage "source=file:///model.onnx" >/dev/null 2>&1 &&
      cp "$seeds/add_signed.edgepkg" "$corpus/bundle_verify/add_signed.edgepkg"
    # A target bundle (zip) made from the package by `edgepack bundle`.
    mkdir -p "$seeds/dist"
    "$EDGEPACK_BIN" bundle "$seeds/add.edgepkg" --target hardware/raspberry-pi-4-4gb.toml \
      -o "$seeds/dist" >/dev/null 2>&1 &&
      for z in "$seeds"/dist/*.zip; do cp "$z" "$corpus/bundle_verify/bundle_$(basename "$z")"; done
  else
    echo "note: edgepack package failed (no ONNX Runtime?); bundle seeds are missing" >&2
  fi
fi
for t in "${all_targets[@]}"; do
  echo "   $t: $(ls "$corpus/$t" | wc -l) seeds" >&2
done

mkdir -p "$root/fuzz/logs"
rm -f "$root"/fuzz/logs/*-fuzz-*.log
status=0
printf '%-14s %8s %10s %12s %8s %s\n' target seconds runs "execs/s" corpus result
for t in "${targets[@]}"; do
  log="$root/fuzz/logs/$t.log"
  # -rss_limit_mb: a reader that allocates past 2 GiB on a small input is a finding.
  # -max_len: the classifier seed is ~600 KB; larger inputs only slow mutation down.
  # -jobs makes libFuzzer write fuzz-<n>.log files in the current folder; only ask for it
  # when running several jobs (and then the stats come from those files).
  par=()
  [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
  set +e
  cargo fuzz run -O "$t" "$corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=700000 \
    "${par[@]}" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  logs=("$log")
  if [ "$jobs" -gt 1 ]; then
    for f in "$root"/fuzz-*.log; do mv "$f" "$root/fuzz/logs/$t-$(basename "$f")"; done
    logs+=("$root"/fuzz/logs/"$t"-fuzz-*.log)
  fi
  runs=$(cat "${logs[@]}" | grep -o 'stat::number_of_executed_units: *[0-9]*' | awk '{s+=$2} END {print s+0}')
  # Time actually spent (a crash ends a run early): libFuzzer's "Done N runs in S second(s)".
  spent=$(cat "${logs[@]}" | grep -o 'Done [0-9]* runs in [0-9]* second' | awk '{s+=$5} END {if (NR) print s / NR; else print 0}')
  spent=${spent%.*}
  [ "${spent:-0}" -gt 0 ] 2>/dev/null || spent=$seconds
  size=$(ls "$corpus/$t" | wc -l)
  if [ $rc -eq 0 ]; then result=clean; else result="CRASH (see $log, fuzz/artifacts/$t/)"; status=1; fi
  printf '%-14s %8s %10s %12s %8s %s\n' "$t" "$seconds" "$runs" "$((runs / spent))" "$size" "$result"
done
exit $status
