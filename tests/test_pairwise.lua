-- Pair-wise distillation (method.md §2): node pooling and normalisation by hand, the loss on
-- small maps by hand, the Gram way and the banded local way against the materialised N×N
-- computation (value and gradient), and finite-difference gradient checks.
local T = require "harness"
local L = skd.losses
skd.manual_seed(5)

-- A B×C×h×w map from per-pixel channel vectors given row-major: px[k] = {c1, c2, ...}.
local map = T.from_pixels

-- Relative max difference of two tensors (scaled by the reference's largest entry).
local function rel(a, b)
  local scale = math.max(b:abs():max():item(), 1e-30)
  return (a - b):abs():max():item() / scale
end

-- The loss computed the obvious way on the materialised N×N affinities, with an optional
-- N×N 0/1 mask of the counted pairs.
-- Node options only (pairwise's options less alpha).
local function node_opts(opts)
  local o = {}
  for k, v in pairs(opts) do if k ~= "alpha" then o[k] = v end end
  return o
end

local function direct(fs, ft, opts, mask)
  local o = node_opts(opts)
  local As, nh, nw = L.affinity(fs, o)
  if ft:size(3) ~= fs:size(3) or ft:size(4) ~= fs:size(4) then
    ft = skd.interpolate(ft, {fs:size(3), fs:size(4)}, {mode = "bilinear", align_corners = true})
  end
  local At = skd.no_grad(L.affinity, ft:detach(), o)
  local d = As - At
  if not mask then return (d * d):mean(), nh, nw end
  local B = fs:size(1)
  return (d * d * mask):sum() / (B * mask:sum():item()), nh, nw
end

-- The 0/1 mask of pairs within Chebyshev distance r on an nh×nw grid (tests only: N² loop).
local function local_mask(nh, nw, r)
  local N = nh * nw
  local m = skd.zeros(N, N)
  for i = 0, N - 1 do
    for j = 0, N - 1 do
      local dy = math.abs(i // nw - j // nw)
      local dx = math.abs(i % nw - j % nw)
      if math.max(dy, dx) <= r then m:set(1, i + 1, j + 1) end
    end
  end
  return m
end

-- Loss and the student's gradient, from a fresh leaf.
local function loss_and_grad(fn, fs)
  local x = fs:detach():clone():requires_grad()
  local l = fn(x)
  l:backward()
  return l:item(), x.grad
end

-- ---------- by hand ----------

T.test("2x2 map, beta=1 by hand: two kinds of student node, one teacher direction", function()
  -- student nodes alternate e1, e2, e1, e2: a^s = 1 for same kind, 0 otherwise; teacher all
  -- e1: a^t = 1 everywhere. 8 of the 16 ordered pairs differ by 1 -> 8/16.
  local fs = map(2, 2, {{1, 0}, {0, 1}, {2, 0}, {0, 3}})
  local ft = map(2, 2, {{1, 0, 0}, {2, 0, 0}, {1, 0, 0}, {5, 0, 0}})
  T.near(L.pairwise(fs, ft, {beta = 1}):item(), 0.5, 1e-7)
  -- cosines that are not 0/1: student (3,4) and (4,3) -> cos 24/25; teacher e1 everywhere
  local fs2 = map(2, 2, {{3, 4}, {4, 3}, {3, 4}, {4, 3}})
  -- pairs of different kind: 8, each (24/25 - 1)^2
  T.near(L.pairwise(fs2, ft, {beta = 1}):item(), 8 * (1 / 25) ^ 2 / 16, 1e-7)
  T.near(direct(fs2, ft, {beta = 1}):item(), 8 * (1 / 25) ^ 2 / 16, 1e-7)
end)

T.test("3x3 map, alpha=1 by hand: |P| = 49 ordered pairs, the centre differs", function()
  -- every node e1 except the centre e2 (student); teacher all e1. Pairs touching the centre
  -- and another node differ by 1: 8 + 8 = 16 of them, all within range 1 of the centre.
  local px = {}
  for k = 1, 9 do px[k] = k == 5 and {0, 1} or {1, 0} end
  local fs = map(3, 3, px)
  local ft = skd.ones(1, 4, 3, 3)
  T.near(L.pairwise(fs, ft, {beta = 1, alpha = 1}):item(), 16 / 49, 1e-7)
  T.near(L.pairwise(fs, ft, {beta = 1}):item(), 16 / 81, 1e-7)
  -- a corner that differs: its range-1 neighbours are 3 others -> 6 of the 49 pairs
  px[5], px[1] = {1, 0}, {0, 1}
  T.near(L.pairwise(map(3, 3, px), ft, {beta = 1, alpha = 1}):item(), 6 / 49, 1e-7)
  -- alpha = 0: only the diagonal, always 1 - 1 = 0
  T.near(L.pairwise(map(3, 3, px), ft, {beta = 1, alpha = 0}):item(), 0, 1e-7)
  -- a range past the grid is the full connection
  T.near(L.pairwise(map(3, 3, px), ft, {beta = 1, alpha = 5}):item(), 16 / 81, 1e-7)
end)

T.test("nodes: beta=2 on 3x3 pools partial border patches (avg over the valid pixels)", function()
  local f = skd.arange(9):float():reshape(1, 1, 3, 3) + 1 -- 1..9
  local f2 = skd.cat({f, f * 0 + 1}, 2)                      -- channel 2: ones
  local n, nh, nw = L.nodes(f2, {beta = 2})
  T.eq(nh, 2); T.eq(nw, 2); T.eq(table.concat(n:size(), "x"), "1x2x4")
  -- patches: {1,2,4,5} -> 3, {3,6} -> 4.5, {7,8} -> 7.5, {9} -> 9; channel 2 stays 1
  local want = {3, 4.5, 7.5, 9}
  for i, v in ipairs(want) do
    local norm = math.sqrt(v * v + 1)
    T.near(n:get(1, 1, i), v / (norm + 1e-8), 1e-6)
    T.near(n:get(1, 2, i), 1 / (norm + 1e-8), 1e-6)
  end
  local m = L.nodes(f2, {beta = 2, pool = "max"})
  T.near(m:get(1, 1, 1), 5 / math.sqrt(26), 1e-6) -- max of {1,2,4,5}
  T.near(m:get(1, 1, 4), 9 / math.sqrt(82), 1e-6)
end)

T.test("nodes: grid=k takes the authors' patch floor(h/k) x floor(w/k)", function()
  local f = skd.randn(1, 3, 8, 6)
  local _, nh, nw = L.nodes(f, {grid = 2})
  T.eq(nh, 2); T.eq(nw, 2)
  _, nh, nw = L.nodes(skd.randn(1, 3, 9, 7), {grid = 2}) -- patch 4x3: ceil(9/4)=3, ceil(7/3)=3
  T.eq(nh, 3); T.eq(nw, 3)
  _, nh, nw = L.nodes(skd.randn(1, 3, 1, 3), {beta = 2}) -- smaller than beta: one row
  T.eq(nh, 1); T.eq(nw, 2)
end)

T.test("affinity is symmetric with a unit diagonal; affinity_row is its row", function()
  local f = skd.randn(2, 4, 5, 3)
  local A, nh, nw = L.affinity(f, {beta = 1})
  T.eq(table.concat(A:size(), "x"), "2x15x15"); T.eq(nh, 5); T.eq(nw, 3)
  T.near(A, A:transpose(2, 3), 1e-6)
  for i = 1, 15 do T.near(A:get(1, i, i), 1, 1e-6) end
  local row = L.affinity_row(f, 7, {beta = 1})
  T.near(row, A:select(2, 7), 1e-6)
  T.near(L.affinity_row(f, {3, 1}, {beta = 1}), A:select(2, 7), 1e-6) -- (3-1)*3 + 1 = 7
  T.raises(function() L.affinity_row(f, 16, {beta = 1}) end, "outside 1..15")
  T.raises(function() L.affinity_row(f, {6, 1}, {beta = 1}) end, "outside the 5x3 node grid")
end)

-- ---------- the Gram way = the materialised N×N ----------

local CASES = {
  {"Cs != Ct, beta=1", {2, 6, 5, 7}, {2, 11, 5, 7}, {beta = 1}},
  {"odd sizes, beta=2 partial patches", {2, 5, 9, 7}, {2, 8, 9, 7}, {beta = 2}},
  {"max pool, beta=2", {1, 6, 7, 5}, {1, 6, 7, 5}, {beta = 2, pool = "max"}},
  {"grid=2", {2, 4, 9, 10}, {2, 7, 9, 10}, {grid = 2}},
  {"detach_norm", {2, 5, 6, 6}, {2, 3, 6, 6}, {beta = 1, detach_norm = true}},
  {"teacher resized to the student", {1, 4, 6, 8}, {1, 5, 3, 4}, {beta = 2}},
  {"beta=3, avg", {3, 8, 10, 11}, {3, 16, 10, 11}, {beta = 3}},
}

for _, c in ipairs(CASES) do
  T.test("Gram = materialised N x N (value and gradient): " .. c[1], function()
    local fs = skd.randn(c[2])
    local ft = skd.randn(c[3])
    local v1, g1 = loss_and_grad(function(x) return L.pairwise(x, ft, c[4]) end, fs)
    local v2, g2 = loss_and_grad(function(x) return (direct(x, ft, c[4])) end, fs)
    T.ok(math.abs(v1 - v2) <= 1e-5 * math.abs(v2), string.format("value %.9g vs %.9g", v1, v2))
    T.ok(rel(g1, g2) <= 1e-5, string.format("gradient relative difference %.3g", rel(g1, g2)))
  end)
end

-- ---------- the banded local way = a masked materialised computation ----------

for _, c in ipairs({
  {"alpha=1, beta=1, 5x6", {2, 4, 5, 6}, {2, 7, 5, 6}, {beta = 1, alpha = 1}},
  {"alpha=2, beta=1, 7x4", {1, 3, 7, 4}, {1, 3, 7, 4}, {beta = 1, alpha = 2}},
  {"alpha=1, beta=2 partial patches", {2, 5, 9, 7}, {2, 6, 9, 7}, {beta = 2, alpha = 1}},
  {"alpha=1, max pool, detach_norm", {1, 6, 8, 8}, {1, 4, 8, 8}, {beta = 2, alpha = 1, pool = "max", detach_norm = true}},
  {"alpha=3 on a 2x9 grid", {2, 4, 2, 9}, {2, 5, 2, 9}, {beta = 1, alpha = 3}},
}) do
  T.test("alpha-local = masked N x N (value and gradient): " .. c[1], function()
    local fs = skd.randn(c[2])
    local ft = skd.randn(c[3])
    local _, nh, nw = L.nodes(fs, node_opts(c[4]))
    local mask = local_mask(nh, nw, c[4].alpha)
    local v1, g1 = loss_and_grad(function(x) return L.pairwise(x, ft, c[4]) end, fs)
    local v2, g2 = loss_and_grad(function(x) return (direct(x, ft, c[4], mask)) end, fs)
    T.ok(math.abs(v1 - v2) <= 1e-5 * math.abs(v2), string.format("value %.9g vs %.9g", v1, v2))
    T.ok(rel(g1, g2) <= 1e-5, string.format("gradient relative difference %.3g", rel(g1, g2)))
  end)
end

-- ---------- finite differences ----------

-- (detach_norm is not a derivative, so it has no finite-difference check: the hand-worked
-- test below pins it.) The losses are O(0.1) with O(1e-2) gradients: scale them so the check's tolerances bite.
local function scaled(fn) return function(...) return fn(...) * 100 end end

for _, c in ipairs({
  {"full, beta=1", {1, 3, 3, 4}, {1, 5, 3, 4}, {beta = 1}},
  {"full, beta=2 avg, partial", {2, 3, 5, 3}, {2, 2, 5, 3}, {beta = 2}},
  {"full, beta=2 max", {1, 3, 4, 4}, {1, 3, 4, 4}, {beta = 2, pool = "max"}},
  {"full, grid=2", {1, 3, 5, 6}, {1, 3, 5, 6}, {grid = 2}},
  {"local alpha=1", {2, 3, 4, 4}, {2, 4, 4, 4}, {beta = 1, alpha = 1}},
  {"local alpha=1, beta=2", {1, 3, 5, 5}, {1, 3, 5, 5}, {beta = 2, alpha = 1}},
}) do
  T.test("gradcheck pairwise wrt the student: " .. c[1], function()
    local fs = skd.randn(c[2]):requires_grad()
    local ft = skd.randn(c[3])
    T.gradcheck(scaled(function(x) return L.pairwise(x, ft, c[4]) end), {fs}, {eps = 1e-2, atol = 2e-3, rtol = 2e-2})
  end)
end

T.test("gradcheck the kernels directly, wrt student and teacher nodes", function()
  local s = skd.randn(2, 3, 6):requires_grad()
  local t = skd.randn(2, 4, 6):requires_grad()
  T.gradcheck(function(x) return skd._l2_normalize(x) end, {s})
  local ns = function(x) return skd._l2_normalize(x) end
  T.gradcheck(scaled(function(a, b) return skd._pairwise_gram(ns(a), ns(b)) end), {s, t},
              {eps = 1e-2, atol = 2e-3, rtol = 2e-2})
  T.gradcheck(scaled(function(a, b) return skd._pairwise_local(ns(a), ns(b), 2, 3, 1) end), {s, t},
              {eps = 1e-2, atol = 2e-3, rtol = 2e-2})
end)

T.test("detach_norm: the norm is a constant in backward", function()
  local x = skd.tensor({{{3}, {4}}}):requires_grad() -- one node (3, 4), norm 5
  local y = skd._l2_normalize(x, {detach_norm = true})
  ;(y:select(2, 1):sum()):backward()                  -- d(x1/5)/dx = (1/5, 0)
  T.near(x.grad, {{{0.2}, {0}}}, 1e-6)
  local x2 = skd.tensor({{{3}, {4}}}):requires_grad()
  ;(skd._l2_normalize(x2):select(2, 1):sum()):backward() -- (1/5 - 9/125, -12/125)
  T.near(x2.grad, {{{0.2 - 9 / 125}, {-12 / 125}}}, 1e-6)
end)

T.test("a zero node normalises to zero with a finite gradient", function()
  local x = skd.zeros(1, 3, 2):requires_grad()
  local y = skd._l2_normalize(x)
  T.near(y, skd.zeros(1, 3, 2), 0)
  y:sum():backward()
  T.ok(x.grad:abs():max():item() < 1e9, "finite")
end)

T.test("reruns are bit-identical (kernels large enough to run threaded)", function()
  local fs, ft = skd.randn(2, 64, 24, 24), skd.randn(2, 96, 24, 24)
  local function run(o)
    local v, g = loss_and_grad(function(x) return L.pairwise(x, ft, o) end, fs)
    return v, g
  end
  for _, o in ipairs({{beta = 1}, {beta = 1, alpha = 1}, {beta = 2, alpha = 2, pool = "max"}}) do
    local v1, g1 = run(o)
    local v2, g2 = run(o)
    T.eq(v1, v2)
    T.eq((g1 - g2):abs():max():item(), 0)
  end
end)

-- ---------- errors ----------

T.test("errors name the op and what came", function()
  local fs, ft = skd.randn(2, 3, 4, 4), skd.randn(3, 3, 4, 4)
  T.raises(function() L.pairwise(fs, ft) end, "pairwise", "batches differ")
  T.raises(function() L.pairwise(fs, skd.randn(2, 3, 4)) end, "pairwise", "B x C x h x w", "2x3x4")
  T.raises(function() L.pairwise(fs, fs, {betta = 2}) end, "unknown option 'betta'")
  T.raises(function() L.pairwise(fs, fs, {alpha = -1}) end, "alpha")
  T.raises(function() L.pairwise(fs, fs, {pool = "min"}) end, "pool")
  T.raises(function() L.pairwise(fs, fs, {beta = 2, grid = 2}) end, "beta or grid")
  T.raises(function() skd._pairwise_gram(skd.randn(2, 3, 5), skd.randn(2, 3, 6)) end,
           "pairwise_gram", "2x3x5", "2x3x6")
  T.raises(function() skd._pairwise_local(skd.randn(1, 3, 6), skd.randn(1, 3, 6), 4, 2, 1) end,
           "pairwise_local", "4x2")
end)

T.done()
