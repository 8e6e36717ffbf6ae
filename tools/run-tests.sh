#!/usr/bin/env bash
# Every test: a Release build (what users build first: library, CLI, tests, with the
# optimizer's warnings), then the same suite again under ASan+UBSan. Warnings are
# errors in both (KHO_WERROR; off by default for users).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
jobs=$(nproc)
run_suite() {
  local build=$1; shift
  cmake -S "$top" -B "$build" "$@" >/dev/null
  cmake --build "$build" -j"$jobs"
  (cd "$build" && ctest -j"$jobs" --output-on-failure --timeout 900)
}
start=$SECONDS
run_suite "$top/build" -DCMAKE_BUILD_TYPE=Release -DKHO_WERROR=ON
# Sanitized pass: fewer rapidcheck cases, the same properties.
RC_PARAMS="${RC_PARAMS_SANITIZE:-max_success=40}" \
  run_suite "$top/build-sanitize" -DCMAKE_BUILD_TYPE=Debug -DKHO_SANITIZE=ON -DKHO_WERROR=ON -DKHO_BUILD_BENCHMARKS=OFF \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"
echo "all tests passed in $((SECONDS - start)) s"
