#!/usr/bin/env bash
# Release builds of edgepack for both architectures, from a fresh Debian 12 x86_64 machine:
#   bash scripts/cross-aarch64.sh            # installs what it needs (apt), builds both
#   bash scripts/cross-aarch64.sh --aarch64  # only the aarch64 build
#   bash scripts/cross-aarch64.sh --no-install
#
# Why Debian's Rust for aarch64: rustup cannot add targets where only the package registries
# are reachable, but Debian 12 ships rustc 1.96 (`rustc-web`, `cargo-web`) and its standard
# library for arm64 (`libstd-rust-web-dev:arm64`, Multi-Arch: same). The x86_64 build uses the
# toolchain first on PATH (rustup's or Debian's), as `cargo build` always does.
#
# Outputs (outside the normal target/ folders, so neither build invalidates the other's
# cache; both are incremental, a second run only relinks what changed):
#   target/cross/aarch64-unknown-linux-gnu/release/edgepack
#   target/cross/x86_64-unknown-linux-gnu/release/edgepack
# and both are copied into the edgepack cache, where `edgepack bundle --with-device-binary`
# finds them:  $EDGEPACK_CACHE/device-binaries/<version>/linux-{aarch64,x86_64}/edgepack
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEPACK_CACHE="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"

install=1
arches="aarch64 x86_64"
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    --aarch64) arches="aarch64" ;;
    --x86_64) arches="x86_64" ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "cross-aarch64.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "$install" = 1 ]; then
  pkgs="rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  missing=""
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "== apt: installing$missing" >&2
    dpkg --print-foreign-architectures | grep -qx arm64 || sudo_ dpkg --add-architecture arm64
    sudo_ apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out_root="$EDGEPACK_CACHE/device-binaries/$version"

for arch in $arches; do
  triple="$arch-unknown-linux-gnu"
  start=$(date +%s)
  echo "== cargo build --release --target $triple (target/cross)" >&2
  if [ "$arch" = aarch64 ]; then
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || {
      echo "cross-aarch64.sh: /usr/bin/rustc or /usr/bin/cargo missing: run without --no-install" >&2
      exit 2
    }
    RUSTC=/usr/bin/rustc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      /usr/bin/cargo build --quiet --release --locked --bin edgepack \
      --target "$triple" --target-dir target/cross
  else
    cargo build --quiet --release --locked --bin edgepack \
      --target "$triple" --target-dir target/cross
  fi
  bin="target/cross/$triple/release/edgepack"
  mkdir -p "$out_root/linux-$arch"
  cp "$bin" "$out_root/linux-$arch/edgepack.tmp"
  mv "$out_root/linux-$arch/edgepack.tmp" "$out_root/linux-$arch/edgepack"
  echo "== $bin ($(stat -c %s "$bin") bytes, $(( $(date +%s) - start )) s) -> $out_root/linux-$arch/edgepack" >&2
done
