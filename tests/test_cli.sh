#!/usr/bin/env bash
# tests/test_cli.sh — the skd-lua command line, as lua(1) defines it: the `arg` table and `...`,
# -e (repeatable), -l, -i, -v, -h, `-` (stdin), `--`, exit codes, errors with a traceback on
# stderr, piped stdin run as a script. Binary: $SKD_BIN, else ./build/skd-lua.
set -u
cd "$(dirname "$0")/.."
BIN="${SKD_BIN:-./build/skd-lua}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

# check NAME EXPECTED_STATUS COMMAND...: runs it, keeping stdout in $out and stderr in $err.
check() {
  local name=$1 want=$2
  shift 2
  out=$("$@" 2>"$TMP/stderr")
  status=$?
  err=$(cat "$TMP/stderr")
  if [ "$status" != "$want" ]; then
    bad "$name" "exit status $status, expected $want; stdout: $out; stderr: $err"
    return 1
  fi
  return 0
}
ok() { pass=$((pass + 1)); echo "ok    $1"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n      %s\n' "$1" "$2"; }
# has NAME TEXT PATTERN (extended regex, multi-line text searched as one string)
has() {
  if printf '%s' "$2" | grep -qzE -- "$3"; then ok "$1"; else bad "$1" "no /$3/ in: $2"; fi
}

cat >"$TMP/args.lua" <<'EOF'
print("n=" .. #arg, "0=" .. arg[0], "1=" .. tostring(arg[1]), "2=" .. tostring(arg[2]))
print("neg1=" .. tostring(arg[-1]), "neg2=" .. tostring(arg[-2]))
print("dots=" .. table.concat({...}, ","), "nd=" .. select("#", ...))
EOF

check "script args" 0 "$BIN" "$TMP/args.lua" a "b c" &&
  has "arg[0] is the script, arg[1..] its arguments" "$out" "n=2	0=$TMP/args.lua	1=a	2=b c"
has "arg[-1] is the interpreter" "$out" "neg1=$BIN	neg2=nil"
has "script arguments are also '...'" "$out" "dots=a,b c	nd=2"

check "options before the script" 0 "$BIN" -e "x=1" "$TMP/args.lua" -e &&
  has "options go to negative indices; options after the script are its arguments" "$out" \
    "n=1	0=$TMP/args.lua	1=-e	2=nil.*neg1=x=1	neg2=-e"

check "no script" 0 "$BIN" -e "print(#arg, arg[0], arg[1], arg[2])" &&
  has "without a script, arg[0] is the interpreter" "$out" "^2	$BIN	-e	print"

check "-e repeated" 0 "$BIN" -e "a = 20" -e "print(a + 22)" -e "print('third')" &&
  has "-e chunks run in order" "$out" "^42
third"
check "-e concatenated" 0 "$BIN" "-eprint(7*6)" && has "-e with its chunk in the same word" "$out" "^42"

check "-v" 0 "$BIN" -v && has "-v prints the skd and Lua versions" "$out" "^skd [0-9]+\.[0-9]+\.[0-9]+ .*Lua 5\.4"
check "-h" 0 "$BIN" -h && has "-h prints the usage" "$out" "usage: .*-e chunk"
check "--help" 0 "$BIN" --help && has "--help prints the usage" "$out" "usage:"

check "- runs stdin" 0 "$BIN" - x y <<<'print("stdin:", ...) print(arg[0], arg[1])' &&
  has "'-' runs stdin with the following arguments" "$out" "^stdin:	x	y
-	x"
check "piped stdin" 0 "$BIN" <<<'print("piped " .. 6 * 7)' &&
  has "with no arguments and stdin not a terminal, stdin is the script" "$out" "^piped 42"
check "-- ends options" 0 "$BIN" -- "$TMP/args.lua" -v -e &&
  has "after --, option-like words are script arguments" "$out" "n=2	0=$TMP/args.lua	1=-v	2=-e"

check "skd global" 0 "$BIN" -e 'print(type(skd), require("skd") == skd, skd.version)' &&
  has "skd is a global and require \"skd\" returns it" "$out" "^table	true	[0-9]"
check "lazy submodule" 0 "$BIN" -e 'print(type(skd.optim), package.loaded["skd.optim"] == skd.optim)' &&
  has "skd.optim loads on first use" "$out" "^table	true"

mkdir -p "$TMP/lib"
echo 'return {v = 5}' >"$TMP/lib/mymod.lua"
check "-l" 0 env LUA_PATH="$TMP/lib/?.lua;;" "$BIN" -l mymod -e 'print(mymod.v)' &&
  has "-l requires a library into a global" "$out" "^5"

cat >"$TMP/err.lua" <<'EOF'
local function inner() error("boom in inner") end
local function outer() inner() end
print("before")
outer()
print("never")
EOF
if check "script error" 1 "$BIN" "$TMP/err.lua"; then
  has "a failing script prints the error on stderr" "$err" "^skd-lua: $TMP/err.lua:1: boom in inner"
  has "... with a traceback through the script" "$err" "stack traceback:.*in (local|upvalue) 'inner'.*in (local|upvalue) 'outer'"
  has "output before the error is kept, nothing after it" "$out" "^before$"
fi
check "error in -e" 1 "$BIN" -e 'error("from -e")' -e 'print("not reached")' &&
  has "an error in -e stops before the next option" "$err" "from -e" &&
  { [ -z "$out" ] && ok "no later chunk ran" || bad "no later chunk ran" "stdout: $out"; }
check "non-string error" 1 "$BIN" -e 'error({})' &&
  has "a non-string error object is described" "$err" "error object is a table value"
check "tensor op error" 1 "$BIN" -e 'local x = skd.ones(2,3) + skd.ones(4,5)' &&
  has "a core error reaches stderr as a Lua error" "$err" "2x3.*4x5|4x5.*2x3"
check "syntax error" 1 "$BIN" -e 'x = = 1' && has "a syntax error is reported" "$err" "unexpected symbol"
check "missing file" 1 "$BIN" "$TMP/no-such-file.lua" &&
  has "a missing script is reported" "$err" "cannot open .*no-such-file.lua"
check "bad option" 1 "$BIN" -x && has "an unknown option is a usage error" "$err" "unrecognized option '-x'.*usage:"
check "-e without a chunk" 1 "$BIN" -e && has "-e needs an argument" "$err" "'-e' needs an argument"
check "os.exit" 3 "$BIN" -e 'os.exit(3)' && ok "os.exit(3) exits with status 3"

check "-i piped" 0 "$BIN" -i <<<$'x = 20\nx + 22\nfor i = 1, 2 do\nprint(i)\nend\nerror("e1")\n"still here"' &&
  has "-i on a pipe: expressions print, continuation lines, errors do not end it" "$out" \
    "42.*1
2.*still here" &&
  has "-i on a pipe: the error with a traceback on stderr" "$err" "e1
stack traceback"
check "-i after a script" 0 "$BIN" -i "$TMP/args.lua" p <<<'print("repl sees", arg[1])' &&
  has "-i runs the script, then reads the REPL" "$out" "n=1.*repl sees	p"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
