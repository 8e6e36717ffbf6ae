#!/usr/bin/env bash
# Installs the Debian 12 packages kho builds with, if any is missing. Needs root (or sudo).
set -euo pipefail
packages=(cmake g++ make libboost-dev libxxhash-dev libgtest-dev librapidcheck-dev
          libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev binutils
          ${KHO_EXTRA_PACKAGES:-})
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
  $sudo apt-get install -y -qq "${missing[@]}"
fi
