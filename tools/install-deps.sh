#!/usr/bin/env bash
# Installs the Debian 12 packages kho builds with, if any is missing. Needs root (or sudo).
# Every package the build opens a file of is named here: .ci/run checks it after the
# test command (../shared/tools/check-debian-deps), so a package installed by hand on
# one machine cannot hide a missing line. `--tests` adds what the test command needs
# beyond a build, for its sanitized pass: clang and its ASan/UBSan runtimes (a Debian
# `clang` without recommends has none), lld to link, and llvm-14 for llvm-symbolizer, so
# a sanitizer's report names functions and lines. `--kernel` adds what
# tools/run-kernel-test.sh needs. Scripts that need more (gnuplot for the charts,
# python3 for the mutants) pass it in KHO_EXTRA_PACKAGES.
set -euo pipefail
packages=(cmake ninja-build g++ make binutils
          libboost-dev libxxhash-dev libfdt-dev
          libgtest-dev librapidcheck-dev libbenchmark-dev
          libcli11-dev nlohmann-json3-dev libfmt-dev
          ${KHO_EXTRA_PACKAGES:-})
test_packages=(clang libclang-rt-14-dev lld-14 llvm-14)
# tools/run-kernel-test.sh: QEMU, the kernel's headers for kbuild, kexec-tools and a
# static busybox for the initramfs (the kernel image comes from its package, unpacked).
kernel_packages=(qemu-system-x86 linux-headers-amd64 kexec-tools busybox-static cpio)
for arg in "$@"; do
  case "$arg" in
    --tests) packages+=("${test_packages[@]}") ;;
    --kernel) packages+=("${kernel_packages[@]}") ;;
    *) echo "usage: $0 [--tests] [--kernel]" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
