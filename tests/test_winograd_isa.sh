#!/usr/bin/env bash
# tests/test_winograd_isa.sh — the Winograd transforms are compiled for AVX2 and for AVX-512
# (core/winograd_transforms.c); a processor with AVX-512 runs only the second unless
# SKD_WG_AVX512=0. Here: tests/test_winograd.lua again on the AVX2 build, and both builds'
# outputs and gradients, F(2,3) and F(4,3), through the packed forward and through sgemm,
# compared bit for bit.
set -u
cd "$(dirname "$0")/.."
. tests/lib/check.sh

isa=$("$BIN" -e 'print(skd._winograd_isa())' 2>&1)
avx2=$(SKD_WG_AVX512=0 "$BIN" -e 'print(skd._winograd_isa())' 2>&1)
check "SKD_WG_AVX512=0 selects the AVX2 build (default here: $isa)" '[ "$avx2" = avx2 ]'

# test_winograd.lua on the AVX2 build: its closing line counts as one check here
SKD_WG_AVX512=0 "$BIN" tests/test_winograd.lua > "$out/avx2.txt" 2>&1
tail -1 "$out/avx2.txt" | sed 's/^/      /'
check "tests/test_winograd.lua passes on the AVX2 build" \
  'tail -1 "$out/avx2.txt" | grep -q " 0 failed$"'

# The same convolutions on each build, every result saved; then compared bit for bit.
cat > "$out/run.lua" <<'LUA'
skd.manual_seed(11)
local res = {}
-- (batch, cin, h, w, cout, dilation): small and wide maps, batch 1 (packed forward) and 3
local cases = {{1, 16, 12, 20, 24, 1}, {3, 8, 9, 14, 12, 1}, {1, 32, 16, 32, 20, 2},
  {2, 12, 11, 7, 10, 1}}
for i, c in ipairs(cases) do
  local x, w = skd.randn(c[1], c[2], c[3], c[4]), skd.randn(c[5], c[2], 3, 3)
  local b, r = skd.randn(c[5]), nil
  for _, algo in ipairs({"winograd2", "winograd4"}) do
    local prev = skd.conv_algo(algo)
    local xx, ww, bb = x:clone():requires_grad(), w:clone():requires_grad(), b:clone():requires_grad()
    local y = skd.conv2d(xx, ww, bb, {padding = c[6], dilation = c[6]})
    r = r or skd.randn(table.unpack(y:size()))
    ;(y * r):sum():backward()
    local frozen = skd.no_grad(function()
      return skd.conv2d(x, w, b, {padding = c[6], dilation = c[6]})
    end)
    skd.conv_algo(prev)
    local k = i .. "/" .. algo
    res[k .. "/y"], res[k .. "/dx"], res[k .. "/dw"] = y:detach(), xx.grad, ww.grad
    res[k .. "/frozen"] = frozen
  end
end
skd.save(arg[1], res)
LUA
"$BIN" "$out/run.lua" "$out/default.safetensors" > "$out/d.txt" 2>&1
SKD_WG_AVX512=0 "$BIN" "$out/run.lua" "$out/avx2.safetensors" > "$out/a.txt" 2>&1
check "both builds ran the cases" '[ -s "$out/default.safetensors" ] && [ -s "$out/avx2.safetensors" ]'
cat "$out/d.txt" "$out/a.txt"
cat > "$out/compare.lua" <<'LUA'
local a, b = skd.load(arg[1]), skd.load(arg[2])
local n, bad = 0, {}
for k, t in pairs(a) do
  n = n + 1
  if not b[k] or (t - b[k]):abs():max():item() ~= 0 then bad[#bad + 1] = k end
end
print(n == 32 and #bad == 0 and "same" or ("differ " .. #bad .. "/" .. n .. " " .. table.concat(bad, " ")))
LUA
same=$("$BIN" "$out/compare.lua" "$out/default.safetensors" "$out/avx2.safetensors" 2>&1 | tail -1)
check "the $isa and avx2 builds give the same bits: outputs, input and weight gradients, frozen forwards ($same)" \
  '[ "$same" = same ]'
finish
