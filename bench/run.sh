#!/usr/bin/env bash
# bench/run.sh — every benchmark (`make bench`); figures, never pass/fail.
#   bench/bench_*.c    C programs, built by `make bench` into $BUILD/bench/ and run here
#   bench/bench_*.lua  scripts run with ./skd-lua
#   bench/bench_*.sh   anything else (e.g. a comparison that needs an optional tool)
# A piece that is missing (not built, no skd-lua) is skipped with a message; one that fails
# is reported and the rest still run. Usage: bench/run.sh [pattern]
set -u
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
pattern="${1:-}"
export LUA_PATH="$(pwd)/bench/lib/?.lua;$(pwd)/tests/lib/?.lua;;"
echo "skd benchmarks — $(nproc) cores online, SKD_THREADS=${SKD_THREADS:-unset (all cores)}"
echo "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"

failed=()
run() { # name, command...
  local name="$1"; shift
  echo
  echo "== $name"
  local t0=$(date +%s)
  "$@"
  local rc=$?
  [ $rc -ne 0 ] && { echo "   ($name failed: exit $rc)"; failed+=("$name"); }
  echo "   ($(( $(date +%s) - t0 )) s)"
}

shopt -s nullglob
for f in bench/bench_*.c bench/bench_*.lua bench/bench_*.sh; do
  [ -n "$pattern" ] && [[ "$f" != *"$pattern"* ]] && continue
  case "$f" in
    *.c)
      bin="$BUILD/bench/$(basename "$f" .c)"
      if [ ! -x "$bin" ]; then echo; echo "== $f: skipped, $bin not built (make bench builds it)"
      elif [ "$f" = bench/bench_conv.c ]; then
        # the im2col + GEMM reference path, then whatever the per-layer choice picks
        # (Winograd / space-to-batch, where core/ has them)
        SKD_CONV_ALGO=direct run "$f (SKD_CONV_ALGO=direct)" "$bin"
        [ -f core/winograd.c ] && SKD_CONV_ALGO=auto run "$f (SKD_CONV_ALGO=auto)" "$bin"
      else run "$f" "$bin"; fi ;;
    *.lua)
      if [ -x ./skd-lua ]; then run "$f" ./skd-lua "$f"
      else echo; echo "== $f: skipped, no ./skd-lua (run make)"; fi ;;
    *.sh) run "$f" bash "$f" ;;
  esac
done
{ [ -z "$pattern" ] || [[ bench/compare.sh == *"$pattern"* ]]; } && run "bench/compare.sh (skd vs PyTorch)" bash bench/compare.sh
echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}" && exit 1
exit 0
