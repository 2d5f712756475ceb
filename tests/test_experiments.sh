#!/usr/bin/env bash
# The experiment scripts end to end with tiny budgets: they run, print their tables and
# write their result files; bad flags are clear errors.
set -u
cd "$(dirname "$0")/.."
. tests/lib/check.sh

tiny="--iterations 2 --teacher-iterations 2 --batch 2 --size 32x48 --train-n 8 --val-n 4 --results $out"
"$BIN" experiments/ablation.lua $tiny > "$out/ablation.txt" 2> "$out/ablation.err"
rc=$?
check "ablation runs end to end (exit $rc)" '[ $rc = 0 ] || { tail -20 "$out/ablation.err"; false; }'
check "ablation prints the table with every configuration" \
  'grep -q "baseline" "$out/ablation.txt" && grep -q "+PI+PA+HO" "$out/ablation.txt" && grep -q "Δ vs baseline" "$out/ablation.txt"'
check "ablation writes table.md, results.json, log.jsonl" \
  '[ -s "$out/ablation/table.md" ] && [ -s "$out/ablation/results.json" ] && [ -s "$out/ablation/log.jsonl" ]'
check "the log has every configuration's iterations" \
  '[ "$(grep -c "\"config\"" "$out/ablation/log.jsonl")" = 8 ]'
check "the weights are printed at start" 'grep -q "weights ce=1 aux=0.4 pi=10 pa=10 ho=0.1" "$out/ablation.err"'
check "the teacher is cached with its mIoU" \
  'ls "$out"/teachers/synthetic-pspnet-r18-w1.safetensors >/dev/null 2>&1'
"$BIN" experiments/ablation.lua $tiny --configs baseline > /dev/null 2> "$out/again.err"
check "a second run reuses the cached teacher" 'grep -q "teacher: loaded" "$out/again.err"'
"$BIN" experiments/ablation.lua --bogus > /dev/null 2> "$out/bad.err"; rc=$?
check "an unknown flag is an error naming it" '[ $rc = 1 ] && grep -q "unknown argument .--bogus." "$out/bad.err"'
"$BIN" experiments/ablation.lua --seeds x > /dev/null 2> "$out/bad2.err"; rc=$?
check "a bad value is an error naming the flag" '[ $rc = 1 ] && grep -q -- "--seeds expects a number" "$out/bad2.err"'
"$BIN" experiments/ablation.lua --help > "$out/help.txt"; rc=$?
check "--help lists the flags" '[ $rc = 0 ] && grep -q -- "--quick" "$out/help.txt" && grep -q -- "--view" "$out/help.txt"'
"$BIN" experiments/train_teacher.lua --role student --iterations 2 --batch 2 --size 32x48 --train-n 8 --val-n 4 --results "$out" > "$out/tt.txt" 2>&1; rc=$?
check "train_teacher trains a student baseline and prints the per-class table" \
  '[ $rc = 0 ] && grep -q "val mIoU" "$out/tt.txt" && [ -s "$out/baselines/synthetic-pspnet-r18-w0.5.safetensors" ] || { tail -5 "$out/tt.txt"; false; }'
"$BIN" experiments/train_teacher.lua --role student --iterations 2 --batch 2 --size 32x48 --train-n 8 --val-n 4 \
  --class-weights median --results "$out" > "$out/cw.txt" 2>&1; rc=$?
check "train_teacher --class-weights median prints the weights and names the file for them" \
  '[ $rc = 0 ] && grep -q "class weights (median frequency): Sky" "$out/cw.txt" && [ -s "$out/baselines/synthetic-pspnet-r18-w0.5-cwmedian.safetensors" ] || { tail -5 "$out/cw.txt"; false; }'
"$BIN" experiments/ablation.lua $tiny --configs baseline --class-weights median > /dev/null 2> "$out/cwa.err"; rc=$?
check "ablation --class-weights median trains its own teacher with them" \
  '[ $rc = 0 ] && grep -q "class weights (median frequency)" "$out/cwa.err" && [ -s "$out/teachers/synthetic-pspnet-r18-w1-cwmedian.safetensors" ] || { tail -5 "$out/cwa.err"; false; }'
"$BIN" experiments/ablation.lua --class-weights inverse > /dev/null 2> "$out/cwb.err"; rc=$?
check "a bad --class-weights is an error naming the choices" '[ $rc = 1 ] && grep -q -- "--class-weights must be none or median, got inverse" "$out/cwb.err"'
"$BIN" experiments/pairwise.lua --iterations 1 --teacher-iterations 1 --batch 2 --size 32x48 --train-n 8 --val-n 4 \
  --betas 2 --alphas 1,full --results "$out" > "$out/pw.txt" 2> "$out/pw.err"; rc=$?
check "pairwise runs PA vs MIMIC vs AT vs LOCAL and the beta x alpha table" \
  '[ $rc = 0 ] && grep -q "MIMIC" "$out/pw.txt" && grep -q "AT" "$out/pw.txt" && grep -q "LOCAL" "$out/pw.txt" && grep -q "β=2" "$out/pw.txt" && [ -s "$out/pairwise/table.md" ] || { tail -5 "$out/pw.err"; false; }'
finish
