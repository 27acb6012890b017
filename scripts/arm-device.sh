#!/usr/bin/env bash
# An emulated ARM64 board: boot Debian's arm64 kernel in qemu (full-system emulation, a
# real Cortex-A72 or A76 as the guest sees it), run one job on it, bring its results back.
#
#   bash scripts/arm-device.sh [--cpu cortex-a72|cortex-a76] [--timeout-s S] [--mem-mb M]
#                              [--smp N] IN_DIR OUT_DIR
#
# IN_DIR is copied to /data on the board and must hold `job.sh`; the job runs as
# `sh /data/job.sh` in /data, with HOME=/tmp, a writable /tmp (tmpfs) and /out. Whatever it
# writes under /out comes back into OUT_DIR (tar + base64 on the console between markers, so
# no disk image or guest driver is needed); the console is saved as OUT_DIR/console.log and
# the job's exit status as OUT_DIR/job-rc. The script exits with the job's status (124 when
# the board did not finish within --timeout-s).
#
# The board has nothing of edgepack on it: only busybox and the C/C++ runtime libraries any
# Linux board has (glibc, libstdc++, libgcc_s). A job brings edgepack and ONNX Runtime in the
# bundles it tests.
#
# Timings measured on this board are those of an emulator on an x86 host: they say nothing
# about a real board, and nothing may be predicted from them.
#
# Everything comes from Debian's package archive (apt): qemu-system-arm, the arm64 kernel
# (linux-image-arm64), busybox-static:arm64, and the arm64 libraries of the cross toolchain
# (libc6-arm64-cross, libstdc++6-arm64-cross). The base image is built once and cached in
# $EDGEPACK_CACHE/arm-device/<kernel version>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEPACK_CACHE="${EDGEPACK_CACHE:-$HOME/.cache/edgepack}"

cpu=cortex-a72 timeout_s=1800 mem_mb=4096 smp=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu="$2"; shift 2 ;;
    --timeout-s) timeout_s="$2"; shift 2 ;;
    --mem-mb) mem_mb="$2"; shift 2 ;;
    --smp) smp="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "arm-device.sh: unknown option '$1'" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} = 2 ] || { echo "arm-device.sh: give IN_DIR and OUT_DIR (see --help)" >&2; exit 2; }
in_dir="${args[0]}" out_dir="${args[1]}"
[ -f "$in_dir/job.sh" ] || { echo "arm-device.sh: $in_dir/job.sh: no such file" >&2; exit 2; }
case "$cpu" in cortex-a72|cortex-a76) ;; *) echo "arm-device.sh: --cpu '$cpu': cortex-a72 or cortex-a76" >&2; exit 2 ;; esac

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- host packages (idempotent) -------------------------------------------------------------
need=""
for p in qemu-system-arm cpio libc6-arm64-cross libstdc++6-arm64-cross; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ] || ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "== apt: installing$need (and the arm64 architecture)" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || sudo_ dpkg --add-architecture arm64
  sudo_ apt-get update -qq
  # shellcheck disable=SC2086
  [ -z "$need" ] || DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# --- the base image: kernel + busybox + libraries + init (cached) ---------------------------
kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-arm64\).*/\1/p' | head -1)
[ -n "$kpkg" ] || { echo "arm-device.sh: no linux-image-arm64:arm64 in apt (run apt-get update)" >&2; exit 2; }
base="$EDGEPACK_CACHE/arm-device/${kpkg#linux-image-}"
if [ ! -f "$base/base.cpio" ] || [ ! -f "$base/vmlinuz" ]; then
  echo "== building the board image in $base ($kpkg, busybox-static:arm64)" >&2
  work=$(mktemp -d)
  chmod 755 "$work"   # apt's _apt user downloads into it
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -qq "$kpkg:arm64" busybox-static:arm64)
  dpkg-deb -x "$work"/linux-image-*.deb "$work/k"
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
  r="$work/rootfs"
  mkdir -p "$r"/{bin,lib,proc,sys,dev,tmp,data,out}
  cp "$work/bb/bin/busybox" "$r/bin/"
  # (the arm64 busybox cannot run here to --list itself: a fixed set of applets)
  for a in sh mount poweroff cat tar gzip base64 unzip ls sed grep cp mv rm mkdir chmod \
           echo printf test [ expr tr cut head tail wc sort uniq sleep date uname id env \
           sha256sum dd find xargs timeout du df free cmp which true false; do
    ln -sf busybox "$r/bin/$a"
  done
  for f in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 \
           libstdc++.so.6 libgcc_s.so.1; do
    cp -L "/usr/aarch64-linux-gnu/lib/$f" "$r/lib/"
  done
  cat > "$r/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mount -t tmpfs -o size=75% tmp /tmp
export HOME=/tmp PATH=/bin LD_LIBRARY_PATH=/lib
echo "==EDGEPACK-BOARD-UP== $(cut -d' ' -f1 /proc/uptime) s"
cd /data && sh /data/job.sh; rc=$?
echo "==EDGEPACK-JOB-RC=$rc=="
echo "==EDGEPACK-OUT-BEGIN=="
tar -C /out -cf - . | gzip -1 | base64
echo "==EDGEPACK-OUT-END=="
poweroff -f
INIT
  chmod +x "$r/init"
  mkdir -p "$base"
  (cd "$r" && find . | sort | cpio -o -H newc --quiet) > "$base/base.cpio.tmp"
  cp "$work"/k/boot/vmlinuz-*-arm64 "$base/vmlinuz.tmp"
  mv "$base/vmlinuz.tmp" "$base/vmlinuz"
  mv "$base/base.cpio.tmp" "$base/base.cpio"
fi

# --- this run: base + the job's files, as one initramfs (the kernel unpacks concatenated
# cpio archives in order) --------------------------------------------------------------------
mkdir -p "$out_dir"
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
mkdir -p "$run/data"
cp -r "$in_dir"/. "$run/data/"
(cd "$run" && find data | sort | cpio -o -H newc --quiet) > "$run/data.cpio"
cat "$base/base.cpio" "$run/data.cpio" > "$run/initrd.cpio"

echo "== booting an emulated $cpu ($smp cores, $mem_mb MiB) with $(du -sh "$in_dir" | cut -f1) of job files; timings under emulation mean nothing about real boards" >&2
start_ms=$(( $(date +%s%N) / 1000000 ))
set +e
# -nic none: the guest needs no network, and the virt board's default virtio NIC wants
# efi-virtio.rom, which Debian ships in ipxe-qemu (a recommends we do not install).
timeout "$timeout_s" qemu-system-aarch64 -M virt -cpu "$cpu" -smp "$smp" -m "$mem_mb" \
  -nographic -no-reboot -nic none -kernel "$base/vmlinuz" -initrd "$run/initrd.cpio" \
  -append "console=ttyAMA0 rdinit=/init quiet loglevel=1 panic=-1" \
  > "$out_dir/console.log" 2>&1 < /dev/null
qrc=$?
set -e
ms=$(( $(date +%s%N) / 1000000 - start_ms )); wall="$((ms / 1000)).$(printf %03d $((ms % 1000)))"
tr -d '\r' < "$out_dir/console.log" > "$run/console"
rc=$(sed -n 's/^==EDGEPACK-JOB-RC=\([0-9]*\)==$/\1/p' "$run/console" | tail -1)
if [ -z "$rc" ]; then
  echo "arm-device.sh: the board did not finish (qemu status $qrc after $wall s); see $out_dir/console.log" >&2
  echo 124 > "$out_dir/job-rc"
  exit 124
fi
sed -n '/^==EDGEPACK-OUT-BEGIN==$/,/^==EDGEPACK-OUT-END==$/p' "$run/console" | sed '1d;$d' \
  | base64 -d | tar -C "$out_dir" -xzf -
echo "$rc" > "$out_dir/job-rc"
echo "== board $cpu: job status $rc, boot-to-poweroff $wall s (emulated; not a board timing)" >&2
exit "$rc"
