#!/usr/bin/env bash
# Every test: a Release build with GCC (what users build first: library, CLI, tests,
# with the optimizer's warnings), then the same suite again as a Debug build under
# ASan+UBSan with clang. Warnings are errors in both (KHO_WERROR; off by default for
# users), so both compilers' warnings are kept out. Prints the configure, build and test
# wall time of each pass.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh" --tests
jobs=$(nproc)
# Ninja for a new build tree (an existing one keeps the generator it was made with).
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}
timings=()
timed() {  # LABEL COMMAND...: runs it, records its wall time
  local label=$1 t0=$SECONDS; shift
  "$@"
  timings+=("$(printf '%-28s %5d s' "$label" $((SECONDS - t0)))")
}
run_suite() {
  local name=$1 build=$2; shift 2
  timed "$name: configure" cmake -S "$top" -B "$build" "$@" >/dev/null
  timed "$name: build" cmake --build "$build" -j"$jobs"
  timed "$name: test" ctest --test-dir "$build" -j"$jobs" --output-on-failure --timeout 900 -LE kernel
}
start=$SECONDS
run_suite release "$top/build" -DCMAKE_BUILD_TYPE=Release -DKHO_WERROR=ON
# Sanitized pass: fewer rapidcheck cases, the same properties. Clang at -O0 with line
# tables only (-g1: enough for ASan's and UBSan's reports to name file and line):
# measured on 2 cores, it builds the sanitized tree in 156 s where GCC at -O1 took 785 s,
# and runs its tests about as fast. KHO_SANITIZE_CXX / KHO_SANITIZE_CC pick another
# compiler (CMake starts the tree afresh when the compiler changes). Linked with lld;
# reports symbolized by LLVM's own symbolizer.
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
RC_PARAMS="${RC_PARAMS_SANITIZE:-max_success=40}" \
  run_suite sanitize "$top/build-sanitize" -DCMAKE_BUILD_TYPE=Debug -DKHO_SANITIZE=ON -DKHO_WERROR=ON \
    -DCMAKE_CXX_COMPILER="${KHO_SANITIZE_CXX:-clang++}" -DCMAKE_C_COMPILER="${KHO_SANITIZE_CC:-clang}" \
    -DCMAKE_EXE_LINKER_FLAGS="${KHO_SANITIZE_LDFLAGS:--fuse-ld=lld}" \
    -DKHO_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DCMAKE_C_FLAGS_DEBUG="-O0 -g1"
printf '%s\n' "${timings[@]}"
echo "all tests passed in $((SECONDS - start)) s"
