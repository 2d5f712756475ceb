#!/usr/bin/env bash
# A training run killed with SIGKILL and resumed ends with exactly the weights of an
# uninterrupted run (issue 4), at small scale: the real train_teacher script, real data
# loader with prefetch and augmentation, momentum, BatchNorm statistics, dropout.
set -u
cd "$(dirname "$0")/.."
. tests/lib/check.sh

args="--role student --iterations 24 --batch 2 --size 32x48 --train-n 12 --val-n 4 --seed 3"
"$BIN" experiments/train_teacher.lua $args --results "$out/full" > "$out/full.txt" 2>&1
check "the uninterrupted run finishes" '[ -s "$out/full/baselines/synthetic-pspnet-r18-w0.5.safetensors" ]'

# The second run checkpoints every 5 iterations (SKD_CHECKPOINT_EVERY) and is killed with
# SIGKILL once it has a checkpoint and has logged iteration 10 or later.
SKD_CHECKPOINT_EVERY=5 "$BIN" experiments/train_teacher.lua $args --results "$out/killed" > "$out/k1.txt" 2>&1 &
pid=$!
ck="$out/killed/baselines/synthetic-pspnet-r18-w0.5-last.safetensors"
for _ in $(seq 1 600); do
  if [ -f "$ck" ] && grep -q '"it":1[0-9]' "$out/killed/baselines/synthetic-pspnet-r18-w0.5-log.jsonl" 2>/dev/null; then break; fi
  sleep 0.1
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
killed_at=$(grep -c '"it"' "$out/killed/baselines/synthetic-pspnet-r18-w0.5-log.jsonl" 2>/dev/null || echo 0)
check "the run was killed mid-way (after $killed_at iterations)" '[ "$killed_at" -lt 24 ] && [ -f "$ck" ]'
SKD_CHECKPOINT_EVERY=5 "$BIN" experiments/train_teacher.lua $args --results "$out/killed" --resume > "$out/k2.txt" 2>&1
check "the resumed run says where it resumed" 'grep -q "resumed from" "$out/k2.txt"'
check "the resumed run finishes" '[ -s "$out/killed/baselines/synthetic-pspnet-r18-w0.5.safetensors" ]'
cat > "$out/compare.lua" <<'LUA'
local a = skd.load(arg[1]); local b = skd.load(arg[2]); local n, bad = 0, 0
for k, t in pairs(a) do
  n = n + 1
  if not b[k] or (t:float() - b[k]:float()):abs():max():item() ~= 0 then bad = bad + 1 end
end
print(n > 0 and bad == 0 and "same" or ("differ " .. bad .. "/" .. n))
LUA
same=$("$BIN" "$out/compare.lua" "$out/full/baselines/synthetic-pspnet-r18-w0.5.safetensors" \
  "$out/killed/baselines/synthetic-pspnet-r18-w0.5.safetensors" 2>&1 | tail -1)
check "killed + resumed weights equal the uninterrupted run's bit for bit ($same)" '[ "$same" = same ]'
check "the log holds each iteration once" \
  '[ "$(grep -c "\"it\"" "$out/killed/baselines/synthetic-pspnet-r18-w0.5-log.jsonl")" = 24 ]'
finish
