#!/usr/bin/env bash
# tests/run.sh — runs every test file, each in its own process, and adds up their closing
# lines into one: "N passed, M failed". A file that crashes or prints no closing line counts
# as one failure. Usage: tests/run.sh [--san] [pattern]
set -u
cd "$(dirname "$0")/.."
BIN=./build/skd-lua
if [ "${1:-}" = "--san" ]; then
  BIN=./build-san/skd-lua
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp"
  export SKD_SAN=1
  shift
fi
pattern="${1:-}"
export SKD_BIN="$BIN"
export LUA_PATH="$(pwd)/tests/lib/?.lua;;"
# One thread count for every test, so reruns are bit-exact.
export SKD_THREADS="${SKD_THREADS:-2}"

total_pass=0 total_fail=0
failed_files=()
shopt -s nullglob
for f in tests/test_*.lua tests/test_*.sh tests/test_*.py; do
  [ -n "$pattern" ] && [[ "$f" != *"$pattern"* ]] && continue
  echo "== $f"
  case "$f" in
    *.lua) out=$("$BIN" "$f" 2>&1); rc=$? ;;
    *.sh)  out=$(bash "$f" 2>&1); rc=$? ;;
    *.py)  out=$(python3 "$f" 2>&1); rc=$? ;;
  esac
  echo "$out" | grep -v '^ok  ' | tail -n 40
  echo "   ($(echo "$out" | grep -c '^ok  ') ok)"
  line=$(echo "$out" | grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "   no closing line (exit $rc): counted as 1 failure"
    total_fail=$((total_fail + 1)); failed_files+=("$f"); continue
  fi
  p=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/')
  m=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
  total_pass=$((total_pass + p)); total_fail=$((total_fail + m))
  if [ "$m" != 0 ] || [ "$rc" != 0 ]; then
    failed_files+=("$f")
    [ "$m" = 0 ] && total_fail=$((total_fail + 1)) && echo "   exit $rc with no failed test: counted as 1 failure"
  fi
done
[ ${#failed_files[@]} -gt 0 ] && echo "failing files: ${failed_files[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
