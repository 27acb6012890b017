#!/usr/bin/env bash
# The whole test suite, from a fresh machine (Rust, Python 3 with pip, nothing else):
#   bash scripts/test.sh
# It installs what the tests need through the ordinary package clients only:
#   - ONNX Runtime 1.31.1's shared library, taken from the `onnxruntime` wheel on PyPI by
#     `edgepack runtime install` (pip download + extract, cached under $EDGEPACK_CACHE);
#   - a Python venv with onnxruntime==1.31.1, numpy and onnx, used only by the tests that
#     compare edgepack with ONNX Runtime's own Python package and ONNX's protobuf classes;
#   - Debian's chromium (apt-get), for the HTML report test in a real headless browser.
# It first checks the style (rustfmt, clippy with warnings as errors) and stops there if off.
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEPACK_CACHE="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"
mkdir -p "$EDGEPACK_CACHE"

venv="$EDGEPACK_CACHE/test-venv"
if ! "$venv/bin/python" -c 'import onnxruntime, numpy, onnx' 2>/dev/null; then
  echo "== creating $venv (onnxruntime==1.31.1, numpy, onnx) for cross-checks" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check onnxruntime==1.31.1 numpy onnx==1.17.0
fi
export EDGEPACK_TEST_PYTHON="$venv/bin/python"

echo "== style: cargo fmt --check, cargo clippy --all-targets -D warnings" >&2
# The house style is enforced, not suggested: formatting, every clippy warning, and
# clippy::unwrap_used outside tests (denied in src/lib.rs and src/main.rs).
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings

echo "== building, then installing ONNX Runtime into the edgepack cache" >&2
# Tests find the library in the cache; a missing runtime then fails them instead of skipping.
cargo run --quiet --bin edgepack -- runtime install >&2
export EDGEPACK_REQUIRE_ORT=1

echo "== cargo test" >&2
# unit, integration and doc tests; benches and examples must at least compile
cargo test
cargo check --quiet --benches --examples

if [ -f tests/report_chromium.sh ]; then
  echo "== HTML report in headless Chromium" >&2
  bash tests/report_chromium.sh
fi

# The ARM smoke check (issue 14): one PP-OCR det bundle with its aarch64 edgepack inside,
# verified and self-tested on an emulated Cortex-A72 (full-system qemu). It apt-installs
# Debian's cross toolchain and qemu and cross-compiles edgepack on the first run (cached
# after that; see docs/arm.md and RELIABILITY.md). EDGEPACK_ARM_SMOKE=0 skips it.
if [ "${EDGEPACK_ARM_SMOKE:-1}" = 1 ]; then
  echo "== ARM smoke check (scripts/arm-device-check.sh --smoke)" >&2
  bash scripts/arm-device-check.sh --smoke -o target/arm-smoke
fi
