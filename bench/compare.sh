#!/usr/bin/env bash
# bench/compare.sh — skd against PyTorch 1.13 on this machine (issue 7, "The comparison"): the
# same networks, shapes, batch and thread count, each case run by both sides back to back
# (alternating which goes first), each side in its own process (so its peak resident memory,
# VmHWM, is that case's alone), medians of the timed runs after one warm-up, printed as ratios
# skd throughput / PyTorch throughput (= PyTorch time / skd time: > 1 means skd is faster).
# A benchmark, never a test.
#
#   bash bench/compare.sh            default: 5 runs per case, a time cap per case and a
#                                    ~10-minute budget for the whole (the 256×512 student
#                                    cases come last and are skipped when it is spent)
#   bash bench/compare.sh --quick    128×256 only, 3 runs
#   bash bench/compare.sh --full     every case, 5 runs, no caps (long on 2 cores)
#   bash bench/compare.sh --profile  only the profile: perf record (cpu-clock) of skd's student
#                                    step (width 1.0, 128×256, batch 8), self time by op family
#                                    and top symbols; one thread (SKD_PROFILE_THREADS=n for more)
#   bash bench/compare.sh --rounds=N  the case list N times over (sides alternated anew each
#                                    round), then each ratio of record round by round with
#                                    their median and range: on a machine whose speed drifts
#                                    for minutes at a time, a round's two sides share the drift
#   bash bench/compare.sh [mode] PATTERN   only the cases whose arguments contain PATTERN
#                                    (e.g. "pairwise", "teacher 101", "256x512")
#   bash bench/compare.sh --table FILE     the tables again from a saved raw file (the "R ..."
#                                    lines of both sides; SKD_COMPARE_SAVE=FILE keeps them)
#
# Sides: bench/bench_vs_torch.lua (./skd-lua, the library) and bench/torch_ref.py (torch.nn
# re-implementations, the distillation step written as the authors' code writes it). PyTorch
# comes from $SKD_PYTHON or /usr/bin/python3 (Debian's python3-torch); without it the skd
# figures are printed alone. Threads: SKD_THREADS (default 2) for skd, torch.set_num_threads
# and OMP_NUM_THREADS the same for PyTorch. On a machine shared with other jobs, a team of
# threads waits at every barrier for a member that is descheduled, which swamps the
# comparison at 2 threads; SKD_THREADS=1 bash bench/compare.sh compares the engines per thread
# and is disturbed far less. SKD_CONV_ALGO=direct measures skd's reference convolution path;
# SKD_WG_PACKED=0 the Winograd forward of small batches with its kernel transformed to memory
# and multiplied by BLIS's sgemm (as before the packed panels of core/winograd_packed.c);
# SKD_POINTWISE_PACKED=0 a frozen network's 1x1 convolutions through sgemm, their weights packed
# on every call (as before core/conv2d_pointwise.c); SKD_WG_AVX512=0 the Winograd transforms'
# AVX2 build on a processor that has AVX-512 (core/winograd_transforms.c; the same bits).
set -u
cd "$(dirname "$0")/.."

mode=default
pattern=""
rounds=1
for a in "$@"; do
  case "$a" in
    --rounds=*) rounds="${a#--rounds=}"
      [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds expects a count >= 1, got '${a#--rounds=}'" >&2; exit 2; } ;;
    --quick) mode=quick ;;
    --full) mode=full ;;
    --profile) mode=profile ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    --table) mode=table ;;
    -*) echo "compare.sh: unknown option '$a' (--quick, --full, --profile, --rounds=N, or a case pattern)" >&2; exit 2 ;;
    *) pattern="$a" ;;
  esac
done

export SKD_THREADS="${SKD_THREADS:-2}"
export OMP_NUM_THREADS="$SKD_THREADS"
PY="${SKD_PYTHON:-/usr/bin/python3}"
SKD=./skd-lua
if [ ! -x "$SKD" ]; then echo "compare.sh: no ./skd-lua (run make); skipped"; exit 0; fi
if "$PY" -c "import torch" 2>/dev/null; then
  have_torch=1
  torch_version=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
else
  have_torch=0
  echo "compare.sh: PyTorch is not importable by $PY (set SKD_PYTHON, or apt-get install python3-torch);"
  echo "            the skd figures are printed alone"
fi

# ---------------------------------------------------------------- the machine's peak
cores=$(getconf _NPROCESSORS_ONLN) # not nproc: it answers OMP_NUM_THREADS
mhz=$(awk -F: '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo | tr -d ' ')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
if [[ "$flags" == *avx512f* ]]; then fpc=64; isa="AVX-512, 2 FMA units assumed"
elif [[ "$flags" == *fma* ]]; then fpc=32; isa="AVX2 + FMA, 2 FMA units assumed"
else fpc=8; isa="SSE"; fi
threads_used=$(( SKD_THREADS < cores ? SKD_THREADS : cores ))
nominal=$(awk -v m="${mhz:-0}" -v t="$threads_used" -v f="$fpc" 'BEGIN {printf "%.0f", m / 1000 * t * f}')

# ---------------------------------------------------------------- the tables
print_tables() { # results file
awk -v nominal="$nominal" -v have_torch="$have_torch" '
function fmt(x) { return x == "" ? "-" : sprintf("%.3f", x) }
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "-" }
function pos(f, x) { return (x > 0) ? sprintf(f, x) : "-" }
function gfs(fl, t) { return (t > 0) ? sprintf("%.1f", fl / t / 1e9) : "-" }
/^R / {
  delete f
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
  k = f["case"] SUBSEP f["metric"]
  if (!(f["case"] in seen)) { seen[f["case"]] = 1; cases[++nc] = f["case"] }
  if (!((f["case"], f["metric"]) in mseen)) { mseen[f["case"], f["metric"]] = 1; metrics[f["case"], ++nm[f["case"]]] = f["metric"] }
  if ("median" in f) { med[f["side"], k] = f["median"]; mn[f["side"], k] = f["min"]; cnt[f["side"], k] = f["n"] }
  else val[f["side"], k] = f["value"]
}
/^SKIP / { skipped[++ns] = substr($0, 11) }
END {
  target["student", "total"] = 1.2; target["teacher", "fwd"] = 1.5; target["distill", "total"] = 1.3
  target["pairwise", "total"] = 10
  # the practical peak
  for (i = 1; i <= nc; i++) if (cases[i] ~ /^sgemm/) {
    c = cases[i]; k = c SUBSEP "total"
    peak = val["skd", c SUBSEP "flops"] / med["skd", k] / 1e9
    printf "peak FP32 measured: BLIS sgemm %s through skd.matmul, %.0f GFLOP/s (median of %d)\n\n", substr(c, 7) "^3", peak, cnt["skd", k]
  }
  printf "%-30s %-8s %10s %10s %7s %7s %7s %5s %9s  %s\n", "case", "metric", "skd s", "torch s", "ratio", "r(min)", "r(cpu)", "n", "load", "target"
  print "------------------------------------------------------------------------------------------------------------"
  for (i = 1; i <= nc; i++) {
    c = cases[i]
    if (c ~ /^(sgemm|layers)/) continue
    split(c, part, "/"); kind = part[1]
    first = 1
    for (j = 1; j <= nm[c]; j++) {
      m = metrics[c, j]; k = c SUBSEP m
      if (!(("skd", k) in med) && !(("torch", k) in med)) continue
      if (m == "cpu") continue
      s = med["skd", k]; t = med["torch", k]
      r = ratio(t, s); rmin = ratio(mn["torch", k], mn["skd", k])
      rc = "-"
      if (m == "total" || (kind == "teacher" && m == "fwd")) rc = ratio(med["torch", c SUBSEP "cpu"], med["skd", c SUBSEP "cpu"])
      tg = ((kind, m) in target) ? ">= " target[kind, m] : ""
      if (tg != "" && r != "-") tg = tg (r + 0 >= target[kind, m] ? "  met" : "  not met")
      nn = cnt["skd", k] (("torch", k) in cnt ? "/" cnt["torch", k] : "")
      ld = first ? val["skd", c SUBSEP "load"] (("torch", c SUBSEP "load") in val ? "/" val["torch", c SUBSEP "load"] : "") : ""
      printf "%-30s %-8s %10s %10s %7s %7s %7s %5s %9s  %s\n", (first ? c : ""), m, fmt(s), fmt(t), r, rmin, rc, nn, ld, tg
      first = 0
    }
  }
  for (i = 1; i <= ns; i++) printf "%-30s skipped (budget of the default mode spent; --full runs it)\n", skipped[i]
  print ""
  print "ratio = PyTorch median time / skd median time (skd throughput / PyTorch throughput; > 1: skd faster);"
  print "r(min) the same from the fastest runs; r(cpu) from the process CPU seconds per run (all threads, spin-waits"
  print "included); n: timed runs skd/torch; load: 1-minute load average as each side finished (skd/torch)."
  print ""
  # memory
  printf "%-30s %12s %12s %8s %14s %14s %8s  %s\n", "peak resident memory (VmHWM)", "skd MiB", "torch MiB", "ratio", "skd above base", "torch above base", "ratio", "target"
  print "--------------------------------------------------------------------------------------------------------------------"
  for (i = 1; i <= nc; i++) {
    c = cases[i]; k = c SUBSEP "hwm_kib"; b = c SUBSEP "base_kib"
    if (!(("skd", k) in val)) continue
    s = val["skd", k] / 1024; t = (("torch", k) in val) ? val["torch", k] / 1024 : 0
    sb = (val["skd", k] - val["skd", b]) / 1024; tb = t > 0 ? (val["torch", k] - val["torch", b]) / 1024 : 0
    r = ratio(s, t); rb = ratio(sb, tb)
    tg = r == "-" ? "" : "<= 0.8" (r + 0 <= 0.8 ? "  met" : "  not met")
    printf "%-30s %12.0f %12s %8s %14.0f %14s %8s  %s\n", c, s, pos("%.0f", t), r, sb, pos("%.0f", tb), rb, tg
  }
  print "ratio = skd / PyTorch (lower is better). \"above base\": minus the resident size of the bare interpreter"
  print "(skd-lua with skd loaded; python3 with torch imported), measured in the same process before the case."
  print ""
  # per-layer convolution table
  for (i = 1; i <= nc; i++) {
    c = cases[i]
    if (c !~ /^layers/) continue
    printf "per-convolution forward of the %s (%s): direct-conv FLOPs / median time\n", (c ~ /^layers\/r/) ? "teacher" : "student", (c ~ /^layers\/r/) ? substr(c, 8) ", frozen, no grad" : substr(c, 8) ", training mode"
    printf "%-32s %-24s %8s %9s %9s %6s %9s %9s %7s\n", "layer", "kernel, channels, out", "GFLOP", "skd ms", "skd GF/s", "%peak", "torch ms", "torch GF/s", "ratio"
    print "------------------------------------------------------------------------------------------------------------------"
    ts = 0; tt = 0; tf = 0
    for (j = 1; j <= nm[c]; j++) {
      m = metrics[c, j]
      if (m !~ /^conv:/) continue
      name = substr(m, 6); k = c SUBSEP m
      fl = val["skd", c SUBSEP "flops:" name]
      s = med["skd", k]; t = (("torch", k) in med) ? med["torch", k] : 0
      ts += s; tt += t; tf += fl
      printf "%-32s %-24s %8.3f %9.2f %9.1f %5.0f%% %9s %9s %7s\n", name, val["skd", c SUBSEP "desc:" name], fl / 1e9, s * 1e3,
        fl / s / 1e9, 100 * fl / s / 1e9 / nominal, pos("%.2f", t * 1e3), gfs(fl, t), ratio(t, s)
    }
    printf "%-32s %-24s %8.3f %9.2f %9.1f %5.0f%% %9s %9s %7s\n", "all convolutions", "", tf / 1e9, ts * 1e3, tf / ts / 1e9,
      100 * tf / ts / 1e9 / nominal, pos("%.2f", tt * 1e3), gfs(tf, tt), ratio(tt, ts)
    printf "%%peak: of the nominal %s GFLOP/s. Times are per layer inside a whole forward%s.\n", nominal, (c ~ /^layers\/r/) ? "" : " (autograd recording on)"
  }
}' "$1"
}

# The ratios of record (each case's total, the teacher's forward) round by round: one results
# file per round, the median of the rounds' ratios and their range.
print_rounds() { # results files, one per round
awk '
function ratio(a, b) { return (a > 0 && b > 0) ? a / b : -1 }
FNR == 1 { nr++ }
/^R / {
  delete f
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = substr($i, length(kv[1]) + 2) }
  split(f["case"], part, "/")
  if (!(f["metric"] == "total" || (part[1] == "teacher" && f["metric"] == "fwd"))) next
  if (f["case"] ~ /^(sgemm|layers)/ || !("median" in f)) next
  k = f["case"] SUBSEP f["metric"]
  if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
  med[nr, f["side"], k] = f["median"]
}
END {
  printf "%-30s %-6s %-44s %7s %12s\n", "case", "metric", "ratio round by round", "median", "range"
  print "------------------------------------------------------------------------------------------------------"
  for (i = 1; i <= nk; i++) {
    k = keys[i]; split(k, ck, SUBSEP); n = 0; list = ""
    for (r = 1; r <= nr; r++) {
      q = ratio(med[r, "torch", k], med[r, "skd", k])
      if (q < 0) continue
      v[++n] = q; list = list sprintf("%.2f ", q)
    }
    if (n == 0) continue
    for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
    m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "%-30s %-6s %-44s %7.2f %5.2f-%-5.2f\n", ck[1], ck[2], list, m, v[1], v[n]
  }
  print "ratio = PyTorch median time / skd median time within one round (> 1: skd faster)."
}' "$@"
}

if [ "$mode" = table ]; then
  [ -f "$pattern" ] || { echo "compare.sh --table: expects a results file, got '$pattern'" >&2; exit 2; }
  if grep -q '^ROUND ' "$pattern"; then # a --rounds file: the rounds' table, then the last round
    tdir=$(mktemp -d /tmp/skd-compare-rounds.XXXXXX)
    awk -v d="$tdir" '/^ROUND / {f = sprintf("%s/%04d", d, $2); next} f {print > f}' "$pattern"
    echo "the ratios of record over $(ls "$tdir" | wc -l) rounds:"
    print_rounds "$tdir"/*
    echo
    print_tables "$(ls -d "$tdir"/* | tail -1)"
    rm -rf "$tdir"
  else
    print_tables "$pattern"
  fi
  exit 0
fi

# ---------------------------------------------------------------- profile mode
if [ "$mode" = profile ]; then
  if ! perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
    echo "compare.sh --profile: perf cannot record here (perf_event_paranoid, no perf?); skipped"; exit 0
  fi
  # One thread unless SKD_PROFILE_THREADS says otherwise: on a shared machine a 2-thread
  # profile is mostly threads spinning in OpenMP/BLIS barriers while their partner is
  # descheduled, which hides where the work goes.
  pt="${SKD_PROFILE_THREADS:-1}"
  # a private copy of the program: others rebuilding ./skd-lua between the recording and the
  # report would leave perf with symbols and unwind tables of another binary
  pdir=$(mktemp -d /tmp/skd-perf.XXXXXX)
  trap 'rm -rf "$pdir"' EXIT
  data="$pdir/perf.data"
  cp "$(readlink -f "$SKD")" "$pdir/skd-lua"
  export LUA_PATH="$(pwd)/lua/?.lua;;"
  echo "perf record (cpu-clock, 999 Hz) of skd's student training step: PSPNet-ResNet18 width 1.0,"
  echo "8x3x128x256, model construction + 1 warm-up + 3 runs, SKD_THREADS=$pt"
  SKD_THREADS=$pt OMP_NUM_THREADS=$pt perf record -q -e cpu-clock -F 999 -o "$data" -- \
    "$pdir/skd-lua" bench/bench_vs_torch.lua student 1.0 128x256 8 3 2>&1 | grep 'metric=total'
  # Self time only: DWARF call graphs through libgomp and BLIS proved unreliable here, and the
  # symbol names already say which op family a sample belongs to.
  perf report -i "$data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' >"$pdir/flat"
  echo
  echo "== self time by op family (symbol names classified; BLIS is every GEMM: conv, Winograd's"
  echo "   element-wise stage, matmul)"
  awk '{
    pct = $1 + 0; dso = $2; sym = $4
    if (dso ~ /blis/) f = "GEMM (BLIS)"
    else if (dso ~ /kernel/) f = "kernel (page faults, memory)"
    else if (dso ~ /gomp/) f = "OpenMP runtime (barriers)"
    else if (dso ~ /lua5/) f = "Lua interpreter"
    else if (sym ~ /transform_|winograd|gather_segment|scatter_strip/) f = "Winograd transforms"
    else if (sym ~ /space_to_batch|batch_to_space|s2b/) f = "space-to-batch (dilated conv)"
    else if (sym ~ /cols_|im2col|col2im|strip_segments|conv2d/) f = "im2col / col2im / conv glue"
    else if (sym ~ /batch_norm|batch_moments/) f = "batch norm"
    else if (sym ~ /unary|binary|relu|scalar|elementwise/) f = "element-wise (ReLU, add, ...)"
    else if (sym ~ /pool/) f = "pooling"
    else if (sym ~ /interpolate|resize/) f = "interpolate (bilinear)"
    else if (sym ~ /softmax|cross_entropy|expf|log/) f = "softmax / cross-entropy (exp, log)"
    else if (sym ~ /dropout/) f = "dropout"
    else if (sym ~ /sgd|adam|optim/) f = "optimiser"
    else if (sym ~ /rng|cos|sin/) f = "random init (model construction)"
    else if (sym ~ /mem(move|cpy|set)|copy|fill|cat|contiguous/) f = "copies, fills, concat"
    else if (sym ~ /reduce|sum|mean/) f = "reductions"
    else f = "other"
    fam[f] += pct
  } END { for (f in fam) printf "  %6.2f%%  %s\n", fam[f], f }' "$pdir/flat" | sort -rn
  echo
  echo "== self time, top symbols"
  awk 'NR <= 30 {printf "  %7s  %-14s %s\n", $1, $2, $4}' "$pdir/flat"
  exit 0
fi

# ---------------------------------------------------------------- the cases
# Each: "args" as both sides take them. Optional ones (the 256×512 student) are run in the
# default mode only while the budget lasts.
runs=5; layer_runs=3; cap=60; budget=600
case "$mode" in
  quick) runs=3; cap=30; budget=0 ;;
  full) layer_runs=5; cap=0; budget=0 ;;
esac
cases=(
  "student 1.0 128x256 8"
  "student 0.5 128x256 8"
  "teacher 50 128x256 1"
  "teacher 101 128x256 1"
  "distill 101 1.0 128x256 2"
  "pairwise 64x128 128 512"
  "layers 1.0 128x256 8"
)
optional=()
if [ "$mode" != quick ]; then
  optional=("student 0.5 256x512 8" "student 1.0 256x512 8" "layers r101 128x256 1")
fi

out=$(mktemp /tmp/skd-compare.XXXXXX)
out_base="$out"
errs=$(mktemp /tmp/skd-compare-err.XXXXXX)
trap 'rm -f "$out_base" "$out_base".* "$errs"' EXIT
export SKD_BENCH_BUDGET="$cap"
t_start=$(date +%s)

echo "skd vs PyTorch ${torch_version:-(absent)} — mode $mode: $runs runs per case after 1 warm-up$( [ "$cap" -gt 0 ] && echo ", timed runs capped at ${cap} s per case and side (then >= 3)")"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $cores cores online, $SKD_THREADS threads per side; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peak FP32: nominal $nominal GFLOP/s ($threads_used × ${mhz} MHz × $fpc FLOP/cycle, $isa)"

side() { # side name, case args...
  local who="$1"; shift
  local t0=$(date +%s) rc r=$runs
  [ "$1" = layers ] && r=$layer_runs # a per-layer table, not a ratio of record: fewer runs
  if [ "$who" = skd ]; then
    "$SKD" bench/bench_vs_torch.lua "$@" $r >>"$out" 2>>"$errs"; rc=$?
  else
    "$PY" bench/torch_ref.py "$@" $r >>"$out" 2>>"$errs"; rc=$?
  fi
  [ $rc -ne 0 ] && { echo "   $who failed on '$*' (exit $rc):"; tail -5 "$errs" | sed 's/^/     /'; }
  printf " %s %ds" "$who" $(( $(date +%s) - t0 )) >&2
}

n=0
run_case() {
  local c="$1"
  n=$((n + 1))
  printf "[%s] %s:" "$(date +%H:%M:%S)" "$c" >&2
  # alternate which side goes first, so that a drifting load favours neither
  if [ $((n % 2)) -eq 1 ] || [ $have_torch -eq 0 ]; then
    side skd $c
    [ $have_torch -eq 1 ] && side torch $c
  else
    side torch $c
    side skd $c
  fi
  echo >&2
}

# the practical peak first (skd only: BLIS sgemm through skd.matmul)
"$SKD" bench/bench_vs_torch.lua sgemm 2048 5 >>"$out" 2>>"$errs"
peak_lines=$(grep '^R ' "$out")
round_files=()
for ((round = 1; round <= rounds; round++)); do
  if [ "$rounds" -gt 1 ]; then # each round its own results file, the peak's lines in each
    [ $round -gt 1 ] && { out="$out_base.$round"; printf '%s\n' "$peak_lines" >"$out"; }
    round_files+=("$out")
    echo "-- round $round of $rounds" >&2
  fi
  t_round=$(date +%s)
  for c in "${cases[@]}"; do
    [ -n "$pattern" ] && [[ "$c" != *"$pattern"* ]] && continue
    run_case "$c"
  done
  for c in "${optional[@]}"; do
    [ -n "$pattern" ] && [[ "$c" != *"$pattern"* ]] && continue
    spent=$(( $(date +%s) - t_round ))
    if [ "$budget" -gt 0 ] && [ "$spent" -gt $((budget * 6 / 10)) ]; then
      echo "[$(date +%H:%M:%S)] $c: skipped, ${spent} s of the default mode's ~${budget} s budget spent (--full runs it)" >&2
      echo "SKIP case=$c" >>"$out"
      continue
    fi
    run_case "$c"
  done
done
echo "(compare.sh took $(( $(date +%s) - t_start )) s)" >&2
load_end=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_end" -v c="$cores" 'BEGIN {exit !(l > c / 2)}'; then
  echo "WARNING: the 1-minute load average is $load_end on $cores cores: other processes shared the CPUs"
  echo "         while this ran, so the times (and most of all the ratios between cases) are noisy;"
  echo "         r(min) is the least disturbed reading, and a quiet machine gives the figures of record."
  echo
fi

if [ "$rounds" -gt 1 ]; then
  echo "the ratios of record over $rounds rounds:"
  print_rounds "${round_files[@]}"
  echo
  echo "round $rounds alone, in full:"
fi
print_tables "$out"
if [ -n "${SKD_COMPARE_SAVE:-}" ]; then
  if [ "$rounds" -gt 1 ]; then # every round's lines, each round after a marker line
    i=0; for f in "${round_files[@]}"; do i=$((i + 1)); echo "ROUND $i"; cat "$f"; done >"$SKD_COMPARE_SAVE"
  else
    cp "$out" "$SKD_COMPARE_SAVE"
  fi && echo "(raw results saved to $SKD_COMPARE_SAVE)"
fi
if [ -s "$errs" ] && grep -qiE 'error|traceback' "$errs"; then
  echo
  echo "errors reported by the sides:"
  grep -iE -A3 'error|traceback' "$errs" | head -20 | sed 's/^/  /'
fi
exit 0
