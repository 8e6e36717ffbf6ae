#!/usr/bin/env bash
# Installs the Debian 12 packages kho builds with, if any is missing. Needs root (or sudo).
# Every package the build opens a file of is named here: .ci/run checks it after the
# test command (../shared/tools/check-debian-deps), so a package installed by hand on
# one machine cannot hide a missing line. `--tests` adds what the test command needs
# beyond a build, for its sanitized pass: clang and its ASan/UBSan runtimes (a Debian
# `clang` without recommends has none), lld to link, and llvm-14 for llvm-symbolizer, so
# a sanitizer's report names functions and lines. Scripts that need more (gnuplot for
# the charts, python3 for the mutants) pass it in KHO_EXTRA_PACKAGES.
set -euo pipefail
packages=(cmake ninja-build g++ make binutils
          libboost-dev libxxhash-dev libfdt-dev
          libgtest-dev librapidcheck-dev libbenchmark-dev
          libcli11-dev nlohmann-json3-dev libfmt-dev
          ${KHO_EXTRA_PACKAGES:-})
test_packages=(clang libclang-rt-14-dev lld-14 llvm-14)
case "${1:-}" in
  --tests) packages+=("${test_packages[@]}") ;;
  "") ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
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
