#!/usr/bin/env bash
# The reports as a user opens them, in a real headless Chromium (Debian's `chromium`, driven
# by playwright-core from npm; both installed here if missing):
#   1. a control page with a script error and a blocked fetch, to prove the checks see errors;
#   2. the demo build's report (`demo-output/report.html`; the demo is run when it is missing);
#   3. the report of a profile with a real sweep (the demo's fp32 profile: batch 1, 2, 4 on
#      1 and 2 threads), rendered by `edgepack report` with one of the demo's quantize
#      reports marked in-sample (as a build without held-out inputs writes it), so the
#      in-sample badge is on the page;
#   4. the demo's profile and bundles with that profile given as the x86 target's device
#      profile (`--device-profile`): the bundles' predictions against a measurement.
# For each page (tests/report_chromium.js): no console message, every chart draws at least
# two data points, no main table overflows at 1280 px; full-page screenshots and first-screen
# screenshots are saved in OUT_DIR as the test's artifacts.
#
# Usage: tests/report_chromium.sh [OUT_DIR] [DEMO_OUTPUT_DIR]
#        (EDGEPACK_BIN: the edgepack executable to render with; default target/release/edgepack)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
demo=${2:-$root/demo-output}

if ! command -v chromium >/dev/null 2>&1; then
    echo "report_chromium: installing Debian's chromium" >&2
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
fi
node_dir=${EDGEPACK_TEST_NODE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgepack-test-node}
if [ ! -d "$node_dir/node_modules/playwright-core" ]; then
    echo "report_chromium: installing playwright-core into $node_dir" >&2
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund playwright-core@1 >/dev/null
fi

cd "$root"
if [ ! -s "$demo/report.html" ]; then
    echo "report_chromium: running the demo into $demo" >&2
    cargo run --release --quiet -- demo --output-dir "$demo" >"$out/demo.stdout" 2>"$out/demo.stderr"
fi
edgepack=${EDGEPACK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/edgepack}
[ -x "$edgepack" ] || cargo build --release --quiet

# The profile with a real sweep: the demo build's fp32 profile, without the build folder.
build_json=$(ls "$demo"/dist/*-build.json | head -1)
sha=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(next(x["sha256"] for x in v["variants"] if x["name"]=="fp32")[:16])' "$build_json")
profile=$demo/dist/work/$sha.profile.json
quantize=$(ls "$demo"/dist/work/*.int8.quantize.json | head -1)
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); v.update(accuracy_basis="in_sample", eval_samples=0); json.dump(v, open(sys.argv[2], "w"))' \
    "$quantize" "$out/in-sample.quantize.json"
"$edgepack" report "$profile" "$out/in-sample.quantize.json" --targets "$root/hardware" \
    -o "$out/profile-report.html" 2>/dev/null
device_target=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(next(t["target"] for t in v["targets"] if t["bundle"] and t["target"].startswith("x86")))' "$build_json")
"$edgepack" report "$profile" "$demo/dist" --targets "$root/hardware" \
    --device-profile "$device_target=$profile" -o "$out/device-report.html" 2>/dev/null

control=$out/control.html
cat >"$control" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'">
</head><body><img src="http://example.invalid/x.png"><script>undefinedFunction();</script></body></html>
HTML
js=$root/tests/report_chromium.js
if NODE_PATH="$node_dir/node_modules" node "$js" "$out" "control=$control" >"$out/control.log" 2>&1; then
    echo "report_chromium: FAIL: the control page's errors were not seen; the checks are blind" >&2
    cat "$out/control.log" >&2
    exit 1
fi
grep -q 'page error' "$out/control.log" && grep -q 'console' "$out/control.log" || {
    echo "report_chromium: FAIL: the control page did not show both a page error and a console message" >&2
    cat "$out/control.log" >&2
    exit 1
}

cp "$demo/report.html" "$out/demo-report.html"
NODE_PATH="$node_dir/node_modules" node "$js" "$out" \
    "demo-report=$out/demo-report.html=#decision,#configs td[title]" \
    "profile-report=$out/profile-report.html=.badge.in-sample,#configs-fixed" \
    "device-report=$out/device-report.html=#predicted-measured,#bundles table"
echo "report_chromium: screenshots in $out"
