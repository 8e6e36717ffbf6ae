#!/usr/bin/env bash
# Mutation run for the readers' validation checks: does some test fail when a check
# is deleted or weakened?
#
#   tools/mutate.sh [--tree DIR] [--work DIR] [--list FILE] [--jobs N] [ID ...]
#
# Each mutant of the list (tools/mutants.txt; format described there) is applied, one
# at a time, to a scratch copy of DIR (default: this checkout, its tracked and new
# files; the checkout itself is never touched). Only the test binary is rebuilt, from
# the test sources the mutant names (the rest are parked, so a header change recompiles
# a few files, not the suite), in a build directory of its own (--work, default
# /tmp/kho-mutate-$USER), and its tests run with the mutant's gtest filter.
#
# Outcomes: killed (a test failed, crashed or timed out), SURVIVED (the tests passed),
# ANCHOR (the line to mutate is not in the file exactly once: re-anchor the mutant;
# not counted as killed), BUILD (the mutant does not compile; not counted). A baseline
# build of each test set runs first, unmutated, and must pass. Score = killed /
# (killed + survived). Exit status 0 when every mutant ran (killed or survived).
# Builds use -O1 without debug info: the cheapest compile whose tests still run fast.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KHO_EXTRA_PACKAGES="python3" "$top/tools/install-deps.sh"  # the mutants are parsed and applied in Python
tree=$top
work=/tmp/kho-mutate-${USER:-$(id -u)}
list=
jobs=2
ids=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --tree) tree=$(cd "$2" && pwd); shift 2 ;;
    --work) work=$2; shift 2 ;;
    --list) list=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) ids+=("$1"); shift ;;
  esac
done
list=${list:-$tree/tools/mutants.txt}
[[ -f $list ]] || { echo "mutate: no mutant list $list" >&2; exit 2; }

src=$work/src          # the scratch copy that gets mutated
parked=$work/parked    # test sources the current mutant does not name
build=$work/build
log=$work/log
mkdir -p "$work" "$parked" "$log"

# ---- the scratch copy ------------------------------------------------------------
rm -rf "$src"
mkdir -p "$src"
(cd "$tree" && git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$src"
rm -f "$parked"/*

# The mutants: one tab-separated record per mutant (id, file, tests, filter, find,
# replace) from the block format of the list.
parse() {
  python3 - "$1" <<'PY'
import sys
mutants, cur = [], None
for raw in open(sys.argv[1], encoding="utf-8"):
    line = raw.rstrip("\n")
    if line.startswith("#") or not line.strip():
        continue
    if line.startswith("[") and line.rstrip().endswith("]"):
        cur = {"id": line.strip()[1:-1]}
        mutants.append(cur)
        continue
    key, _, value = line.partition(":")
    if cur is None or key.strip() not in ("file", "find", "replace", "tests", "filter"):
        sys.exit(f"mutants: cannot read line: {line}")
    cur[key.strip()] = value.strip()
for m in mutants:
    missing = [k for k in ("file", "find", "replace", "tests") if k not in m]
    if missing:
        sys.exit(f"mutants: [{m['id']}] lacks {', '.join(missing)}")
    fields = [m["id"], m["file"], m["tests"], m.get("filter", "*"), m["find"], m["replace"]]
    if any("\t" in f for f in fields):
        sys.exit(f"mutants: [{m['id']}] has a tab")
    print("\t".join(fields))
PY
}

# apply FILE FIND REPLACE: the one line whose text (indentation aside) is FIND gets
# REPLACE, same indentation. Exit 3 if no line matches, 4 if several do.
apply() {
  python3 - "$@" <<'PY'
import sys
path, find, replace = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(path, encoding="utf-8").read().split("\n")
hits = [i for i, l in enumerate(lines) if l.strip() == find]
if len(hits) != 1:
    sys.exit(3 if not hits else 4)
i = hits[0]
indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
lines[i] = indent + replace
open(path, "w", encoding="utf-8").write("\n".join(lines))
PY
}

# Parks every test source that no pattern of $1 names (globs relative to tests/,
# e.g. "corrupt_luo*_test.cpp luo*_test.cpp"), brings back the named ones.
named() {
  local - name=$1 pat
  set -f  # the patterns are matched against names, not expanded against files
  for pat in $2; do
    # shellcheck disable=SC2053  # the pattern is meant to glob
    [[ $name == $pat ]] && return 0
  done
  return 1
}
select_tests() {
  local f name found=0
  for f in "$parked"/*_test.cpp; do
    [[ -e $f ]] || continue
    name=$(basename "$f")
    if named "$name" "$1"; then mv "$f" "$src/tests/"; fi
  done
  for f in "$src"/tests/*_test.cpp; do
    name=$(basename "$f")
    if named "$name" "$1"; then found=1; else mv "$f" "$parked/"; fi
  done
  [[ $found -eq 1 ]] || { echo "mutate: no test source matches '$1'" >&2; return 1; }
}

configure() {
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g0" \
    -DKHO_BUILD_EXAMPLES=OFF -DKHO_BUILD_TOOLS=OFF -DKHO_BUILD_BENCHMARKS=OFF \
    -DKHO_WERROR=OFF >"$log/cmake.log" 2>&1
}

# build_and_test LOGNAME FILTER: 0 tests passed, 1 tests failed, 2 build failed.
build_and_test() {
  if ! cmake --build "$build" --target kho_tests -j"$jobs" >"$log/$1.build.log" 2>&1; then
    return 2
  fi
  # Rapidcheck properties run fewer cases here: a mutant is found by the corruption
  # tests' exact errors, not by luck.
  if RC_PARAMS="max_success=25" timeout 600 "$build/tests/kho_tests" --gtest_filter="$2" \
      --gtest_brief=1 >"$log/$1.test.log" 2>&1; then
    return 0
  fi
  return 1
}

parsed=$(parse "$list") || exit 2
mapfile -t records <<<"$parsed"
configure

declare -A baseline_done=()
killed=0 survived=0 errors=0 total=0
survivors=() problems=()
start=$SECONDS
for rec in "${records[@]}"; do
  IFS=$'\t' read -r id file tests filter find replace <<<"$rec"
  if [[ ${#ids[@]} -gt 0 && " ${ids[*]} " != *" $id "* ]]; then continue; fi
  total=$((total + 1))
  if [[ ! -f $src/$file ]]; then
    echo "ANCHOR    $id  ($file: no such file)"
    errors=$((errors + 1)); problems+=("$id: $file missing"); continue
  fi
  select_tests "$tests"
  key="$tests|$filter"
  if [[ -z ${baseline_done[$key]:-} ]]; then
    set +e; build_and_test "baseline-$id" "$filter"; rc=$?; set -e
    if [[ $rc -ne 0 ]]; then
      echo "mutate: the unmutated tree fails ($tests, filter $filter); see $log/baseline-$id.*.log" >&2
      exit 2
    fi
    baseline_done[$key]=1
  fi
  cp "$src/$file" "$work/original"
  t0=$SECONDS
  set +e; apply "$src/$file" "$find" "$replace"; rc=$?; set -e
  if [[ $rc -ne 0 ]]; then
    why=$([[ $rc -eq 3 ]] && echo "line not found" || echo "line found more than once")
    echo "ANCHOR    $id  ($file: $why: $find)"
    errors=$((errors + 1)); problems+=("$id: anchor $why")
    continue
  fi
  set +e; build_and_test "$id" "$filter"; rc=$?; set -e
  cp "$work/original" "$src/$file"   # new mtime: the next build recompiles it
  case $rc in
    0) echo "SURVIVED  $id  ($file; $((SECONDS - t0)) s)"; survived=$((survived + 1)); survivors+=("$id") ;;
    1) echo "killed    $id  ($((SECONDS - t0)) s)"; killed=$((killed + 1)) ;;
    2) echo "BUILD     $id  (does not compile; $log/$id.build.log)"; errors=$((errors + 1)); problems+=("$id: build") ;;
  esac
done

ran=$((killed + survived))
echo
echo "mutants: $total, killed $killed, survived $survived, not run $errors ($((SECONDS - start)) s)"
if [[ $ran -gt 0 ]]; then
  echo "score: $killed/$ran ($(( (100 * killed) / ran ))%)"
fi
[[ ${#survivors[@]} -eq 0 ]] || printf 'survivor: %s\n' "${survivors[@]}"
[[ ${#problems[@]} -eq 0 ]] || printf 'not run: %s\n' "${problems[@]}"
[[ $errors -eq 0 ]]
