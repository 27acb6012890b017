#!/usr/bin/env bash
# Load `edgepack report`'s HTML page in a real headless Chromium (Debian's `chromium`
# package, installed here if missing) and check that:
#   - the page logs no console message at all (it has no script; a Content-Security-Policy
#     violation such as a network fetch, or any script error, would log one),
#   - the rendered DOM holds the four charts and every section,
#   - a screenshot is produced.
# A control page with a deliberate script error and a blocked fetch runs first, to prove
# the console check can see errors on this Chromium build.
#
# Usage: tests/report_chromium.sh [OUT_DIR]   (OUT_DIR keeps the page, DOM, log, screenshot)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! command -v chromium >/dev/null 2>&1; then
    echo "report_chromium: installing Debian's chromium" >&2
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null
fi

# The page under test: the CLI integration test writes its inputs and report.html here.
(cd "$root" && EDGEPACK_REPORT_OUT="$out" cargo test --quiet --test cli \
    report::report_writes_one_self_contained_html_page >/dev/null)
page="$out/report.html"
[ -s "$page" ] || { echo "report_chromium: FAIL: $page was not written" >&2; exit 1; }

chrome() {
    local udd
    udd=$(mktemp -d)
    timeout 120 chromium --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --user-data-dir="$udd" --enable-logging=stderr --v=0 "$@"
    local rc=$?
    rm -rf "$udd"
    return $rc
}

# Console lines look like `[...:INFO:CONSOLE:3] "Uncaught ...", source: file://...`
# (older builds: `CONSOLE(3)`); CSP violations are console lines too.
console_lines() { grep -E 'CONSOLE|Uncaught|Content Security Policy|Refused to' "$1" || true; }

# 1. Control: a page that must log errors, under the same CSP as the report.
control="$out/control.html"
cat >"$control" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'">
</head><body><img src="http://example.invalid/x.png"><script>undefinedFunction();</script></body></html>
HTML
chrome --dump-dom "file://$control" >"$out/control.dom.html" 2>"$out/control.log" || true
if ! console_lines "$out/control.log" | grep -q 'Uncaught' ||
   ! console_lines "$out/control.log" | grep -q 'Content Security Policy'; then
    echo "report_chromium: FAIL: the control page's errors were not seen; the console check is blind" >&2
    exit 1
fi

# 2. The report: no console output at all.
chrome --dump-dom "file://$page" >"$out/dom.html" 2>"$out/console.log"
errors=$(console_lines "$out/console.log")
if [ -n "$errors" ]; then
    echo "report_chromium: FAIL: console messages while loading the report:" >&2
    echo "$errors" >&2
    exit 1
fi
svgs=$(grep -o '<svg' "$out/dom.html" | wc -l)
if [ "$svgs" -ne 4 ]; then
    echo "report_chromium: FAIL: expected 4 charts in the rendered DOM, found $svgs" >&2
    exit 1
fi
for id in summary charts ops fit matrix bundles quantization configs; do
    grep -q "<section id=\"$id\"" "$out/dom.html" || {
        echo "report_chromium: FAIL: section '$id' missing from the rendered DOM" >&2
        exit 1
    }
done

# 3. Screenshot of the whole page (tall window).
chrome --hide-scrollbars --window-size=1280,4600 --screenshot="$out/report.png" \
    "file://$page" 2>"$out/screenshot.log" >/dev/null
if [ ! -s "$out/report.png" ]; then
    echo "report_chromium: FAIL: no screenshot produced" >&2
    exit 1
fi
echo "report_chromium: ok: no console errors, $svgs charts, screenshot $out/report.png"
