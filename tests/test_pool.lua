-- Pooling: max/avg with ceil_mode, padding and count_include_pad, adaptive average pooling.
-- Values by hand, gradients by finite differences, PyTorch as a reference where installed,
-- errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(1)

-- 0..15 in a 1x1x4x4 map:
--    0  1  2  3
--    4  5  6  7
--    8  9 10 11
--   12 13 14 15
local function grid4() return skd.arange(16):reshape(1, 1, 4, 4) end

-- Distinct values (a permutation of a ramp, spacing 4/n) so no max window has a near-tie
-- that a finite-difference step could flip.
local function distinct(...)
  local shape, n = {...}, 1
  for _, s in ipairs(shape) do n = n * s end
  local v = {}
  for k = 0, n - 1 do v[k + 1] = ((k * 7919) % n) / n * 4 - 2 end
  return skd.tensor(v):reshape(shape)
end

T.test("max_pool2d 4x4 kernel 3 stride 2: ceil_mode adds the partial window", function()
  local x = grid4()
  T.near(skd.max_pool2d(x, 3, {stride = 2}), {10}, 0)
  local y = skd.max_pool2d(x, 3, {stride = 2, ceil_mode = true})
  T.eq(table.concat(y:size(), "x"), "1x1x2x2")
  T.near(y, {10, 11, 14, 15}, 0)
end)

T.test("max_pool2d with padding 1 and ceil_mode by hand, gradient routed to the argmax", function()
  local x = grid4():requires_grad()
  local y = skd.max_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true})
  T.near(y, {5, 7, 7, 13, 15, 15, 13, 15, 15}, 0)
  y:sum():backward()
  -- 15 wins four windows, 13 and 7 two each, 5 one
  local want = {0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 2, 0, 4}
  T.near(x.grad, want, 0)
end)

T.test("max_pool2d ties go to the first maximum (row-major)", function()
  local x = skd.ones(1, 1, 2, 2):requires_grad()
  skd.max_pool2d(x, 2):sum():backward()
  T.near(x.grad, {1, 0, 0, 0}, 0)
end)

-- max_pool2d walks each output row tap by tap; against the window-by-window definition on
-- random sizes, kernels, strides, paddings, ceil mode, integer values (many ties) and NaNs:
-- the values, and the gradient routed to the first maximum (a NaN wins).
T.test("max_pool2d equals the window-by-window loop (ties, NaN, borders, ceil mode)", function()
  local rng = skd.rand(4000)
  local r, pos = rng:reshape(-1), 0
  local function draw(lo, hi)
    pos = pos + 1
    return lo + math.floor(r:get(pos) * (hi - lo + 1))
  end
  local runs = 0
  for _ = 1, 60 do
    local h, w, k, st = draw(1, 8), draw(1, 8), draw(1, 4), draw(1, 3)
    local pad, ceil = draw(0, k // 2), draw(0, 1) == 1
    local x = skd.zeros(1, 2, h, w)
    for c = 1, 2 do for a = 1, h do for b = 1, w do x:set(draw(-2, 2), 1, c, a, b) end end end
    if draw(0, 4) == 0 then x:set(0 / 0, 1, 1, draw(1, h), draw(1, w)) end
    x:requires_grad(true)
    local ok, y = pcall(skd.max_pool2d, x, k, {stride = st, padding = pad, ceil_mode = ceil})
    if ok then
      runs = runs + 1
      local g = skd.zeros(1, 2, h, w)
      for c = 1, 2 do for i = 1, y:size(3) do for j = 1, y:size(4) do
        local y0, x0 = math.max(0, (i - 1) * st - pad), math.max(0, (j - 1) * st - pad)
        local bv, by, bx = -math.huge, y0, x0
        for yy = y0, math.min(h, (i - 1) * st - pad + k) - 1 do
          for xx = x0, math.min(w, (j - 1) * st - pad + k) - 1 do
            local v = x:get(1, c, yy + 1, xx + 1)
            if v > bv or v ~= v then bv, by, bx = v, yy, xx end
          end
        end
        local got = y:get(1, c, i, j)
        T.ok(got == bv or (got ~= got and bv ~= bv), "value at " .. i .. "," .. j)
        if by < h and bx < w then g:set(g:get(1, c, by + 1, bx + 1) + 1, 1, c, by + 1, bx + 1) end
      end end end
      y:sum():backward()
      T.eq(T.maxdiff(x.grad, g), 0)
    end
  end
  T.ok(runs > 30, "too few valid pooling shapes: " .. runs)
end)

T.test("avg_pool2d 4x4 kernel 3 stride 2 padding 1 ceil_mode by hand (both divisor rules)", function()
  local x = grid4()
  -- count_include_pad=true: windows clipped to the padded input, so the ceil-mode windows
  -- that run past the padding divide by 6 or 4, not 9
  local y = skd.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true})
  T.near(y, {10 / 9, 24 / 9, 10 / 6, 51 / 9, 90 / 9, 33 / 6, 25 / 6, 42 / 6, 15 / 4}, 1e-6)
  -- count_include_pad=false: divide by the real elements only
  local z = skd.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false})
  T.near(z, {10 / 4, 24 / 6, 10 / 2, 51 / 6, 90 / 9, 33 / 3, 25 / 2, 42 / 3, 15 / 1}, 1e-6)
  -- a plain 2x2 average
  T.near(skd.avg_pool2d(x, 2), {2.5, 4.5, 10.5, 12.5}, 0)
end)

T.test("avg_pool2d backward spreads g/divisor over the window", function()
  local x = grid4():requires_grad()
  skd.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true}):sum():backward()
  -- pixel (4,4) lies in windows (2,2) /9, (2,3) /6, (3,2) /6, (3,3) /4
  T.near(x.grad:get(1, 1, 4, 4), 1 / 9 + 1 / 6 + 1 / 6 + 1 / 4, 1e-6)
  -- pixel (1,1) only in window (1,1) /9
  T.near(x.grad:get(1, 1, 1, 1), 1 / 9, 1e-7)
end)

T.test("adaptive_avg_pool2d 5x5 -> 3x3: PyTorch's overlapping bins by hand", function()
  local x = skd.arange(25):reshape(1, 1, 5, 5)
  -- rows/cols bins: [0,2) [1,4) [3,5)
  T.near(skd.adaptive_avg_pool2d(x, 3), {3, 4.5, 6, 10.5, 12, 13.5, 18, 19.5, 21}, 1e-6)
  T.near(skd.adaptive_avg_pool2d(x, 1), {12}, 1e-6)
  T.near(skd.adaptive_avg_pool2d(x, {1, 5}), {10, 11, 12, 13, 14}, 1e-6)
  local y = skd.adaptive_avg_pool2d(skd.randn(2, 3, 7, 5), {2, 4})
  T.eq(table.concat(y:size(), "x"), "2x3x2x4")
end)

T.test("3-d (C,H,W) input pools like a batch of one", function()
  local x = skd.randn(3, 6, 6)
  local a = skd.max_pool2d(x, 2)
  local b = skd.max_pool2d(x:reshape(1, 3, 6, 6), 2)
  T.eq(a:dim(), 3)
  T.near(a, b, 0)
end)

T.test("gradcheck max_pool2d with padding and ceil_mode", function()
  T.gradcheck(function(x) return skd.max_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true}) end,
              {distinct(2, 2, 7, 7):requires_grad()}, {eps = 1e-3})
  T.gradcheck(function(x) return skd.max_pool2d(x, {kernel = {2, 3}, stride = {1, 2}}) end,
              {distinct(1, 2, 5, 6):requires_grad()}, {eps = 1e-3})
end)

T.test("gradcheck avg_pool2d with padding, ceil_mode, both divisor rules", function()
  for _, cip in ipairs({true, false}) do
    T.gradcheck(function(x)
      return skd.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = cip})
    end, {skd.randn(2, 2, 6, 7):requires_grad()})
  end
  T.gradcheck(function(x) return skd.avg_pool2d(x, {kernel = {3, 2}, stride = {2, 1}}) end,
              {skd.randn(1, 2, 7, 5):requires_grad()})
end)

T.test("gradcheck adaptive_avg_pool2d on odd sizes (PSPNet bins 1,2,3,6)", function()
  local x = skd.randn(1, 2, 7, 9):requires_grad()
  for _, b in ipairs({1, 2, 3, 6}) do
    T.gradcheck(function(t) return skd.adaptive_avg_pool2d(t, b) end, {x})
  end
end)

T.test("pooling repeats bit for bit across thread counts", function()
  local x = skd.randn(4, 16, 33, 35)
  T.same_at_threads(function()
    return skd.avg_pool2d(x, 3, {stride = 2, padding = 1, ceil_mode = true}),
           skd.max_pool2d(x, 3, {stride = 2, ceil_mode = true})
  end)
end)

-- ---------- PyTorch as the reference ----------

local cases = {
  {"max k3 s2 ceil", "max_pool2d", {3, {stride = 2, ceil_mode = true}}, "F.max_pool2d(x, 3, 2, 0, ceil_mode=True)"},
  {"max k3 s2 p1 ceil", "max_pool2d", {3, {stride = 2, padding = 1, ceil_mode = true}},
   "F.max_pool2d(x, 3, 2, 1, ceil_mode=True)"},
  {"max k2 s2 ceil", "max_pool2d", {2, {ceil_mode = true}}, "F.max_pool2d(x, 2, 2, ceil_mode=True)"},
  {"avg k3 s2 p1 ceil", "avg_pool2d", {3, {stride = 2, padding = 1, ceil_mode = true}},
   "F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)"},
  {"avg k3 s2 p1 ceil no-pad-count", "avg_pool2d",
   {3, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false}},
   "F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)"},
  {"avg k2x3 s2x1 ceil", "avg_pool2d", {{kernel = {2, 3}, stride = {2, 1}, ceil_mode = true}},
   "F.avg_pool2d(x, (2, 3), (2, 1), ceil_mode=True)"},
  -- k2 s2 p1 ceil: the last window starts in the input's last row and runs into the padding
  {"max k2 s2 p1 ceil", "max_pool2d", {2, {padding = 1, ceil_mode = true}},
   "F.max_pool2d(x, 2, 2, 1, ceil_mode=True)"},
  {"avg k2 s2 p1 ceil", "avg_pool2d", {2, {padding = 1, ceil_mode = true}},
   "F.avg_pool2d(x, 2, 2, 1, ceil_mode=True)"},
  {"avg k2 s2 p1 ceil no-pad-count", "avg_pool2d",
   {2, {padding = 1, ceil_mode = true, count_include_pad = false}},
   "F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False)"},
  {"adaptive 1", "adaptive_avg_pool2d", {1}, "F.adaptive_avg_pool2d(x, 1)"},
  {"adaptive 2", "adaptive_avg_pool2d", {2}, "F.adaptive_avg_pool2d(x, 2)"},
  {"adaptive 3", "adaptive_avg_pool2d", {3}, "F.adaptive_avg_pool2d(x, 3)"},
  {"adaptive 6", "adaptive_avg_pool2d", {6}, "F.adaptive_avg_pool2d(x, 6)"},
  {"adaptive 4x5", "adaptive_avg_pool2d", {{4, 5}}, "F.adaptive_avg_pool2d(x, (4, 5))"},
}
R.test("pooling forward and backward match PyTorch on odd sizes", function()
  -- one python run for every (size, case): starting torch is the slow part
  local code, outs, inputs, ours = {}, {}, {}, {}
  for s, size in ipairs({{2, 3, 13, 11}, {1, 2, 8, 9}, {1, 1, 6, 5}}) do
    local x = skd.randn(table.unpack(size))
    inputs["x" .. s] = x
    for k, c in ipairs(cases) do
      local id = s .. "_" .. k
      local xx = x:clone():requires_grad()
      local y = skd[c[2]](xx, table.unpack(c[3]))
      local r = skd.randn(table.unpack(y:size()))
      ;(y * r):sum():backward()
      inputs["r" .. id] = r
      ours[id] = {y, xx.grad, c[1] .. " on " .. table.concat(size, "x")}
      code[#code + 1] = string.format(
        "xx = x%d.clone().requires_grad_(); y%s = %s; (y%s * r%s).sum().backward(); g%s = xx.grad",
        s, id, (c[4]:gsub("%(x,", "(xx,")), id, id, id)
      outs[#outs + 1] = "y" .. id
      outs[#outs + 1] = "g" .. id
    end
  end
  local ref = R.run(table.concat(code, "\n"), inputs, outs)
  for id, o in pairs(ours) do
    T.eq(table.concat(o[1]:size(), "x"), table.concat(ref["y" .. id]:size(), "x"), o[3] .. " shape")
    T.near(o[1], ref["y" .. id], 1e-5, o[3] .. " forward")
    T.near(o[2], ref["g" .. id], 1e-5, o[3] .. " backward")
  end
end)

-- ---------- bad input ----------

T.test("bad pooling calls raise errors naming the op and the problem", function()
  local x = skd.randn(1, 2, 5, 5)
  local bad = {
    {function() skd.max_pool2d(skd.randn(5, 5), 2) end, "max_pool2d", "4-d", "5x5"},
    {function() skd.avg_pool2d(skd.randn(2, 1, 1, 5, 5), 2) end, "avg_pool2d", "4-d", "2x1x1x5x5"},
    {function() skd.max_pool2d(x:int(), 2) end, "max_pool2d", "float32", "int32"},
    {function() skd.max_pool2d(x, 3, {padding = 2}) end, "max_pool2d", "padding", "half"},
    {function() skd.avg_pool2d(x, 7) end, "avg_pool2d", "too small", "1x2x5x5"},
    {function() skd.max_pool2d(x, {kernel = {2, -1}}) end, "max_pool2d", "positive"},
    {function() skd.avg_pool2d(x, 2, {stride = -1}) end, "avg_pool2d", "positive"},
    {function() skd.adaptive_avg_pool2d(x, 0) end, "adaptive_avg_pool2d", "at least 1x1"},
    {function() skd.adaptive_avg_pool2d(skd.randn(4), 2) end, "adaptive_avg_pool2d", "4-d"},
    {function() skd.max_pool2d(nil, 2) end, "tensor expected"},
  }
  T.raises_each(bad)
end)

T.done()
