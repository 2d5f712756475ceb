# tests/lib/check.sh — what the shell tests share, sourced from the repository's root: BIN (the
# skd-lua under test), out (a scratch directory, removed on exit), check NAME CONDITION (counts
# and prints one result; CONDITION is eval'd) and finish (the closing line "N passed, M
# failed", and the exit status).
BIN=${SKD_BIN:-./build/skd-lua}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass+1)); echo "ok    $1"; else fail=$((fail+1)); echo "FAIL  $1"; fi; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}
