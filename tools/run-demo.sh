#!/usr/bin/env bash
# The main job: build the userspace kexec model and run one live update in it.
# Extra arguments go to kexec_model (e.g. --json, --crash-at seal-root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh"
build="${KHO_BUILD_DIR:-$top/build}"
export CMAKE_GENERATOR=${CMAKE_GENERATOR:-Ninja}  # for a new build tree
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target kexec_model kho_cli
exec "$build/examples/kexec_model" "$@"
