#!/usr/bin/env bash
# The device check: PP-OCR det bundles for every aarch64 target, proven on an emulated
# ARM64 board (scripts/arm-device.sh) with only what the bundles carry.
#
#   bash scripts/arm-device-check.sh            # full: every aarch64 target, A72 and A76
#   bash scripts/arm-device-check.sh --smoke    # one bundle, verify + self-test, A72 (CI)
#   options: -o DIR (default target/arm-device-check), --cpu cortex-a72[,cortex-a76],
#            --no-cross (use the aarch64 edgepack already in the cache, do not rebuild it);
#            EDGEPACK=PATH uses that host edgepack instead of building target/debug/edgepack
#
# Host side: `edgepack build` makes the bundles for the aarch64 targets in hardware/ with
# --with-device-binary (each selected variant), then `edgepack bundle --variant V` forces each
# quantized variant once (Raspberry Pi 4); a tampered copy and an x86_64 bundle go along.
# Board side (per emulated CPU), for every bundle, with nothing installed: extract the
# bundle's own edgepack and ONNX Runtime (`unzip -j BUNDLE 'runtime/*'`), then
# `./edgepack verify`, `./edgepack verify --self-test --json` (max |diff| per variant),
# `./edgepack run BUNDLE`, `./edgepack profile BUNDLE --json device.json`; the tampered bundle
# must fail verification (status 1) and the x86_64 bundle must be refused by `run` with one
# line (status 2) while `verify` still checks its integrity. Back on the host, each
# device.json is merged with `edgepack bundle --device-profile TARGET=device.json`.
#
# TIMINGS UNDER EMULATION MEAN NOTHING ABOUT REAL BOARDS: qemu translates every ARM
# instruction on an x86 host. The profiles here prove that profiling works on the device and
# merges back; nothing is predicted from their figures, and the merged bundles are written
# under merge-check/ only to prove the merge.
#
# Exit status: 0 when every check passed, 1 otherwise. The summary is OUT/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEPACK_CACHE="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"

smoke=0 out=target/arm-device-check cpus="" cross=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; shift ;;
    --no-cross) cross=0; shift ;;
    -o) out="$2"; shift 2 ;;
    --cpu) cpus="${2//,/ }"; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "arm-device-check.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$cpus" ] || { [ $smoke = 1 ] && cpus="cortex-a72" || cpus="cortex-a72 cortex-a76"; }
t0=$(date +%s)
say() { echo "== [$(( $(date +%s) - t0 )) s] $*" >&2; }

# 1. Both edgepack builds: the host's, and the aarch64 one the bundles carry.
if [ $cross = 1 ]; then
  say "cross-compiling edgepack for aarch64 (scripts/cross-aarch64.sh --aarch64)"
  bash scripts/cross-aarch64.sh --aarch64
fi
host_ep="${EDGEPACK:-}"
if [ -z "$host_ep" ]; then
  cargo build --quiet --bin edgepack
  host_ep=target/debug/edgepack
fi
"$host_ep" runtime install >&2
"$host_ep" runtime install --platform linux-aarch64 >&2

# 2. The model, from the rapidocr-onnxruntime wheel (cached).
# (fetched and cached by the test suite's zoo, src/zoo.rs)
det="$EDGEPACK_CACHE/models/ppocr/ch_PP-OCRv4_det_infer.onnx"
[ -f "$det" ] || { echo "arm-device-check.sh: no PP-OCR det model at $det (run the test suite once to fetch it)" >&2; exit 2; }

rm -rf "$out"
mkdir -p "$out/targets" "$out/board/bundles"
# A small page keeps emulated inference in seconds; the check is about correctness.
shape="x=1x3x64x64"
# The self-test input every bundle carries (seeded; expected outputs computed on this host).
"$host_ep" run "$det" --shape "$shape" --seed 1 --save-inputs "$out/samples" > /dev/null
if [ $smoke = 1 ]; then
  cp hardware/raspberry-pi-4-4gb.toml "$out/targets/"
  say "edgepack build for raspberry-pi-4-4gb (--with-device-binary; fp16 only, the cheapest variant)"
  "$host_ep" build "$det" --targets "$out/targets" -o "$out/dist" --shape "$shape" \
    --variants fp16 --no-profile --with-device-binary --sample-inputs "$out/samples" >&2
  pkg=$(ls "$out"/dist/*.edgepkg)
else
  for f in hardware/*.toml; do
    grep -q '^arch = "aarch64"' "$f" && cp "$f" "$out/targets/"
  done
  say "edgepack build for $(ls "$out/targets" | wc -l) aarch64 targets (--with-device-binary)"
  "$host_ep" build "$det" --targets "$out/targets" -o "$out/dist" --shape "$shape" \
    --variants fp16,int8,int8-weight --no-profile --with-device-binary --sample-inputs "$out/samples" >&2
  pkg=$(ls "$out"/dist/*.edgepkg)
  for v in $(python3 -c 'import json,sys,zipfile; m=json.loads(zipfile.ZipFile(sys.argv[1]).read("manifest.json")); print(" ".join(v["name"] for c in m["components"] for v in c["variants"] if v["name"]!="fp32"))' "$pkg"); do
    say "forcing variant $v (raspberry-pi-4-4gb)"
    "$host_ep" bundle "$pkg" --target "$out/targets/raspberry-pi-4-4gb.toml" --variant "$v" \
      --with-device-binary -o "$out/forced-$v" >&2
    for z in "$out/forced-$v"/*.zip; do cp "$z" "$out/board/bundles/forced-$v-$(basename "$z")"; done
  done
fi
cp "$out"/dist/*.zip "$out/board/bundles/"
first=$(ls "$out"/dist/*.zip | head -1)

# A tampered copy: one byte of the model flipped (any byte fails verification).
mkdir -p "$out/board/refused"
cp "$first" "$out/board/refused/tampered.zip"
python3 - "$out/board/refused/tampered.zip" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.find(b".onnx") + 4096  # inside the first model entry's data
b[i] ^= 0x01
open(p, "wb").write(bytes(b))
PY
# An x86_64 bundle, to be refused by the aarch64 edgepack.
"$host_ep" bundle "$pkg" --target hardware/x86-industrial-pc.toml -o "$out/x86" >&2
cp "$out"/x86/*.zip "$out/board/refused/x86_64.zip"
# Integrity is the same everywhere: the tampered copy fails here too.
set +e
"$host_ep" verify "$out/board/refused/tampered.zip" > "$out/host-tampered.txt" 2>&1
echo $? > "$out/host-tampered.rc"
set -e

smoke_flag=$smoke
cat > "$out/board/job.sh" <<JOB
smoke=$smoke_flag
JOB
cat >> "$out/board/job.sh" <<'JOB'
# Runs on the emulated board. Nothing of edgepack is installed: each bundle brings its own.
grep -m1 "CPU part" /proc/cpuinfo; grep -m1 Features /proc/cpuinfo
mkdir -p /out
grep -m1 "CPU part" /proc/cpuinfo > /out/cpu.txt; grep -m1 Features /proc/cpuinfo >> /out/cpu.txt
for b in /data/bundles/*.zip; do
  n=$(basename "$b" .zip)
  rm -rf /tmp/dev && mkdir -p /tmp/dev && cd /tmp/dev
  unzip -q -j "$b" 'runtime/*'
  ls -l /tmp/dev > "/out/$n.files.txt"
  ./edgepack verify "$b" > "/out/$n.verify.txt" 2>&1; echo "$n verify $?" >> /out/rc.txt
  ./edgepack verify "$b" --self-test --json > "/out/$n.selftest.json" 2> "/out/$n.selftest.err"
  echo "$n selftest $?" >> /out/rc.txt
  ./edgepack run "$b" > "/out/$n.run.txt" 2>&1; echo "$n run $?" >> /out/rc.txt
  if [ "$smoke" = 0 ]; then
    ./edgepack profile "$b" --plan quick --threads 1 --shape x=1x3x64x64 --json "/out/$n.device.json" > "/out/$n.profile.txt" 2>&1
    echo "$n profile $?" >> /out/rc.txt
  fi
  cat "/out/$n.run.txt"
done
# Refusals, with the first bundle's edgepack.
./edgepack verify /data/refused/tampered.zip > /out/tampered.verify.txt 2>&1; echo "tampered verify $?" >> /out/rc.txt
./edgepack run /data/refused/tampered.zip > /out/tampered.run.txt 2>&1; echo "tampered run $?" >> /out/rc.txt
./edgepack run /data/refused/x86_64.zip > /out/x86_64.run.txt 2>&1; echo "x86_64 run $?" >> /out/rc.txt
./edgepack verify /data/refused/x86_64.zip > /out/x86_64.verify.txt 2>&1; echo "x86_64 verify $?" >> /out/rc.txt
cat /out/rc.txt
JOB

fail=0
summary="$out/summary.txt"
{
  echo "edgepack device check ($( [ $smoke = 1 ] && echo smoke || echo full )), $(date -u +%FT%TZ)"
  echo "TIMINGS UNDER EMULATION MEAN NOTHING ABOUT REAL BOARDS; nothing is predicted from them."
} > "$summary"
for cpu in $cpus; do
  say "booting the emulated $cpu board with $(ls "$out/board/bundles" | wc -l) bundles"
  res="$out/$cpu"
  set +e
  bash scripts/arm-device.sh --cpu "$cpu" --timeout-s 3000 "$out/board" "$res"
  brc=$?
  set -e
  if [ $brc != 0 ] || [ ! -f "$res/rc.txt" ]; then
    echo "$cpu: the board run failed (status $brc), see $res/console.log" >> "$summary"
    fail=1
    continue
  fi
  echo "$cpu: $(tr '\n' ' ' < "$res/cpu.txt" | tr -s ' \t' ' ')" >> "$summary"
  # Expected statuses: every bundle 0; tampered 1; x86_64 run 2 (one line), verify 0.
  while read -r name step rc; do
    want=0
    case "$name $step" in
      "tampered verify"|"tampered run") want=1 ;;
      "x86_64 run") want=2 ;;
    esac
    ok=ok; [ "$rc" = "$want" ] || { ok="FAILED (want $want)"; fail=1; }
    extra=""
    if [ "$step" = selftest ] && [ -f "$res/$name.selftest.json" ]; then
      extra=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join("%s max|diff|=%.3e" % (s["variant"], s["max_abs_diff"]) for s in d["self_test"]))' "$res/$name.selftest.json" 2>/dev/null || true)
    fi
    if [ "$name $step" = "x86_64 run" ]; then
      lines=$(grep -c . "$res/x86_64.run.txt" || true)
      [ "$lines" = 1 ] || { ok="FAILED (want one line, got $lines)"; fail=1; }
      extra=$(head -1 "$res/x86_64.run.txt")
    fi
    printf '  %-60s %-9s status %s %s %s\n' "$name" "$step" "$rc" "$ok" "$extra" >> "$summary"
  done < "$res/rc.txt"
  # Merge each target bundle's device profile back (build's bundles, not the forced ones).
  if [ $smoke = 0 ]; then
    for z in "$out"/dist/*.zip; do
      n=$(basename "$z" .zip)
      t=$(python3 -c 'import json,sys,zipfile; print(json.loads(zipfile.ZipFile(sys.argv[1]).read("manifest.json"))["target"]["name"])' "$z")
      set +e
      "$host_ep" bundle "$pkg" --target "$out/targets/$t.toml" \
        --device-profile "$t=$res/$n.device.json" -o "$out/merge-check/$cpu" --json \
        > "$res/$n.merge.json" 2> "$res/$n.merge.err"
      mrc=$?
      set -e
      basis=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([v["basis"] for v in d[0]["variants"] if v["variant"]==d[0]["chosen"]][0])' "$res/$n.merge.json" 2>/dev/null || echo "?")
      ok=ok; { [ $mrc = 0 ] && [ "${basis#measured on target}" != "$basis" ]; } || { ok=FAILED; fail=1; }
      printf '  %-60s %-9s status %s %s basis: %s (emulated timings: proves the merge, predicts nothing)\n' "$n" merge "$mrc" "$ok" "$basis" >> "$summary"
    done
  fi
done
htrc=$(cat "$out/host-tampered.rc")
ok=ok; [ "$htrc" = 1 ] || { ok=FAILED; fail=1; }
echo "host: tampered verify status $htrc $ok" >> "$summary"
echo "total wall time $(( $(date +%s) - t0 )) s; result: $([ $fail = 0 ] && echo PASSED || echo FAILED)" >> "$summary"
cat "$summary"
exit $fail
