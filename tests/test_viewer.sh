#!/usr/bin/env bash
# The viewer's tests (tests/viewer_cases.lua). The windowed cases need an X server: they run
# under Xvfb (xvfb-run, from scripts/install-deps.sh), so SDL's real window, renderer and event
# queue are exercised; without xvfb-run they are skipped with a message and the headless (PNG)
# cases still run. Prints the cases' closing line "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
BIN="${SKD_BIN:-./build/skd-lua}"
export SKD_BIN="$BIN"
export LUA_PATH="$(pwd)/tests/lib/?.lua;;"
unset SKD_VIEWER SKD_VIEWER_DIR SKD_VIEWER_FONT
# SDL and Mesa complain on stderr without one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
  trap 'rm -rf "$XDG_RUNTIME_DIR"' EXIT
fi

headless() {
  env -u DISPLAY -u WAYLAND_DISPLAY SKD_VIEWER_TEST_WINDOW=0 "$BIN" tests/viewer_cases.lua
}

if ! command -v xvfb-run >/dev/null 2>&1; then
  echo "skip  windowed cases: xvfb-run not found (install xvfb and xauth); headless cases only"
  headless
  exit $?
fi
# 24-bit screen: the default 8-bit one would make the window's read-back differ.
out=$(xvfb-run -a -s "-screen 0 1600x1000x24" "$BIN" tests/viewer_cases.lua 2>&1)
rc=$?
echo "$out"
if ! echo "$out" | grep -qE '^[0-9]+ passed, [0-9]+ failed'; then
  echo "skip  windowed cases: xvfb-run did not run the cases (exit $rc); headless cases only"
  headless
  exit $?
fi
exit $rc
