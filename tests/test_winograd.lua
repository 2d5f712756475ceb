-- The arithmetic-saving conv2d paths (core/winograd.c, core/conv2d_s2b.c) against the direct
-- im2col path, their reference: Winograd F(2x2,3x3) and F(4x4,3x3) on 3x3 stride-1 layers,
-- space-to-batch for dilated ones; forward and every gradient; error bounds; gradcheck through
-- the dispatch; determinism; the SKD_CONV_ALGO / skd.conv_algo switch and the per-layer rule.
local T = require "harness"
skd.manual_seed(7)

-- Runs conv2d under one algorithm, with a fixed upstream gradient r:
-- returns y, dx, dw, db (db nil without bias).
local function run(algo, x, w, b, opts, r)
  local prev = skd.conv_algo(algo)
  local ok, res = pcall(function()
    local xx, ww = x:clone():requires_grad(), w:clone():requires_grad()
    local bb = b and b:clone():requires_grad() or nil
    local y = skd.conv2d(xx, ww, bb, opts)
    ;(y * r):sum():backward()
    return {y, xx.grad, ww.grad, bb and bb.grad}
  end)
  skd.conv_algo(prev)
  if not ok then error(res, 0) end
  return table.unpack(res, 1, 4)
end

-- max |a - ref| / max |ref|: the error relative to the output's scale.
local function relerr(a, ref)
  local scale = ref:abs():max():item()
  return T.maxdiff(a, ref) / (scale > 0 and scale or 1)
end

local function outsize(x, w, opts)
  return skd.conv2d(x, w, nil, opts):size()
end

-- Each quantity of `algo` against the direct path within tol (relative, as above).
local function compare(algo, xs, ws, opts, with_bias, tol)
  local x, w = skd.randn(table.unpack(xs)), skd.randn(table.unpack(ws))
  local b = with_bias and skd.randn(ws[1]) or nil
  local r = skd.randn(table.unpack(outsize(x, w, opts)))
  local y0, dx0, dw0, db0 = run("direct", x, w, b, opts, r)
  local y1, dx1, dw1, db1 = run(algo, x, w, b, opts, r)
  local errs = {relerr(y1, y0), relerr(dx1, dx0), relerr(dw1, dw0)}
  for k, what in ipairs({"forward", "grad input", "grad weight"}) do
    if not (errs[k] <= tol) then
      error(string.format("%s %s: relative error %.3g exceeds %.3g", algo, what, errs[k], tol), 2)
    end
  end
  if b then T.near(db1, db0, 1e-4 * db0:abs():max():item(), "grad bias") end
  return errs
end

local function desc(xs, ws, opts)
  local o = {}
  for _, k in ipairs({"padding", "dilation"}) do
    if opts[k] then
      local v = opts[k]
      o[#o + 1] = k .. " " .. (type(v) == "table" and table.concat(v, "x") or v)
    end
  end
  return string.format("%s -> %d, %s%s", table.concat(xs, "x"), ws[1],
                       #o > 0 and table.concat(o, ", ") or "no padding", "")
end

-- Bounds: F(4,3) ≤ 1e-4 (the issue's), F(2,3) ≤ 2e-6; measured: ~7e-6 and ~4e-7.
local BOUND = {winograd4 = 1e-4, winograd2 = 2e-6}

-- ---------- Winograd on 3x3 stride-1 layers ----------

local plain = {
  {{2, 64, 32, 32}, {64, 64, 3, 3}, {padding = 1}, true},   -- a ResNet basic-block conv
  {{1, 5, 17, 23}, {7, 5, 3, 3}, {padding = 0}, true},      -- odd sizes, Cin ~= Cout, batch 1
  {{1, 5, 17, 23}, {7, 5, 3, 3}, {padding = 1}, false},
  {{8, 3, 9, 13}, {4, 3, 3, 3}, {padding = 1}, true},       -- batch 8
  {{8, 16, 6, 5}, {8, 16, 3, 3}, {padding = 0}, false},
  {{2, 3, 7, 5}, {4, 3, 3, 3}, {padding = 2}, true},        -- backward pads by 0
  {{2, 3, 7, 5}, {4, 3, 3, 3}, {padding = 3}, false},       -- backward crops
  {{2, 4, 9, 10}, {3, 4, 3, 3}, {padding = {0, 2}}, true},  -- non-square padding
  {{1, 3, 3, 150}, {2, 3, 3, 3}, {padding = 1}, true},      -- a row of 38 tiles: strips
  {{3, 2, 3, 3}, {2, 2, 3, 3}, {padding = 0}, true},        -- a single output pixel
  {{2, 2, 1, 1}, {3, 2, 3, 3}, {padding = 1}, true},        -- 1x1 map, all padding
  -- a PSPNet head: the transformed kernel (128 MB for F(2,3), 302 MB for F(4,3)) is made a
  -- block of output channels at a time, forward and (rotated) backward-input; F(4,3)'s last
  -- block is short
  {{1, 4096, 4, 4}, {512, 4096, 3, 3}, {padding = 1}, true},
}

for _, algo in ipairs({"winograd2", "winograd4"}) do
  for _, c in ipairs(plain) do
    T.test(algo .. " vs direct: " .. desc(c[1], c[2], c[3]), function()
      compare(algo, c[1], c[2], c[3], c[4], BOUND[algo])
    end)
  end
end

-- ---------- space-to-batch for dilated layers (padding = dilation) ----------

local dilated = {
  {{1, 5, 13, 17}, {6, 5, 3, 3}, {padding = 2, dilation = 2}, true},
  {{2, 4, 11, 9}, {3, 4, 3, 3}, {padding = 4, dilation = 4}, true},
  {{8, 3, 10, 7}, {5, 3, 3, 3}, {padding = 2, dilation = 2}, false},   -- batch 8
  {{1, 3, 3, 10}, {2, 3, 3, 3}, {padding = 4, dilation = 4}, true},    -- a sub-grid with no rows
  {{2, 3, 9, 11}, {4, 3, 3, 3}, {padding = {1, 2}, dilation = {1, 2}}, true},
  {{2, 32, 16, 32}, {32, 32, 3, 3}, {padding = 4, dilation = 4}, false}, -- layer4-like
}

for _, algo in ipairs({"winograd2", "winograd4"}) do
  for _, c in ipairs(dilated) do
    T.test(algo .. " (space-to-batch) vs direct: " .. desc(c[1], c[2], c[3]), function()
      compare(algo, c[1], c[2], c[3], c[4], BOUND[algo])
    end)
  end
end

-- ---------- layers no fast path takes fall back to the direct path, bit for bit ----------

T.test("layers the fast paths cannot take are computed by the direct path", function()
  for _, c in ipairs({
    {{2, 4, 9, 9}, {3, 4, 3, 3}, {padding = 1, stride = 2}},
    {{2, 4, 9, 9}, {4, 2, 3, 3}, {padding = 1, groups = 2}},
    {{2, 4, 9, 9}, {3, 4, 5, 5}, {padding = 2}},
    {{2, 4, 9, 9}, {3, 4, 1, 1}, {}},
    {{2, 4, 9, 9}, {3, 4, 3, 3}, {padding = 1, dilation = 2}}, -- padding ~= dilation
  }) do
    local x, w = skd.randn(table.unpack(c[1])), skd.randn(table.unpack(c[2]))
    local r = skd.randn(table.unpack(outsize(x, w, c[3])))
    local y0, dx0, dw0 = run("direct", x, w, nil, c[3], r)
    for _, algo in ipairs({"winograd2", "winograd4", "auto"}) do
      local y1, dx1, dw1 = run(algo, x, w, nil, c[3], r)
      T.near(y1, y0, 0, algo .. " forward")
      T.near(dx1, dx0, 0, algo .. " grad input")
      T.near(dw1, dw0, 0, algo .. " grad weight")
    end
  end
end)

-- ---------- gradcheck through the dispatched conv ----------

for _, algo in ipairs({"winograd2", "winograd4"}) do
  for _, c in ipairs({
    {"padding 1 with bias", {2, 3, 6, 7}, {4, 3, 3, 3}, {padding = 1}},
    {"dilation 2 (space-to-batch)", {1, 2, 7, 9}, {3, 2, 3, 3}, {padding = 2, dilation = 2}},
  }) do
    T.test("gradcheck " .. algo .. " " .. c[1], function()
      local prev = skd.conv_algo(algo)
      local x, w = skd.randn(table.unpack(c[2])):requires_grad(), skd.randn(table.unpack(c[3])):requires_grad()
      local b = skd.randn(c[3][1]):requires_grad()
      local ok, err = pcall(T.gradcheck, function(xx, ww, bb) return skd.conv2d(xx, ww, bb, c[4]) end,
                            {x, w, b}, {eps = 1e-2, atol = 2e-3, rtol = 1e-2, max_checks = 60})
      skd.conv_algo(prev)
      if not ok then error(err, 0) end
    end)
  end
end

-- ---------- determinism ----------

T.test("two runs are bit-identical (forward and gradients, every path)", function()
  for _, c in ipairs({
    {{4, 32, 20, 20}, {48, 32, 3, 3}, {padding = 1}},
    {{2, 32, 16, 16}, {32, 32, 3, 3}, {padding = 2, dilation = 2}},
  }) do
    local x, w, b = skd.randn(table.unpack(c[1])), skd.randn(table.unpack(c[2])), skd.randn(c[2][1])
    local r = skd.randn(table.unpack(outsize(x, w, c[3])))
    for _, algo in ipairs({"auto", "winograd2", "winograd4"}) do
      local a = {run(algo, x, w, b, c[3], r)}
      local z = {run(algo, x, w, b, c[3], r)}
      for k = 1, 4 do T.near(z[k], a[k], 0, algo .. " output " .. k) end
    end
  end
end)

T.test("the same bits at 1 and 2 threads (batch 1: the packed forward, its panels split by thread)", function()
  local prev = skd.threads()
  for _, c in ipairs({
    {{1, 64, 16, 32}, {40, 64, 3, 3}, {padding = 1}},                 -- 40: a short last panel
    {{1, 24, 16, 32}, {32, 24, 3, 3}, {padding = 2, dilation = 2}},
  }) do
    local x, w, b = skd.randn(table.unpack(c[1])), skd.randn(table.unpack(c[2])), skd.randn(c[2][1])
    local r = skd.randn(table.unpack(outsize(x, w, c[3])))
    for _, algo in ipairs({"winograd2", "winograd4"}) do
      skd.threads(1)
      local a = {run(algo, x, w, b, c[3], r)}
      skd.threads(2)
      local z = {run(algo, x, w, b, c[3], r)}
      skd.threads(prev)
      for k = 1, 4 do T.near(z[k], a[k], 0, algo .. " output " .. k) end
    end
  end
end)

-- ---------- the switch and the per-layer rule ----------

T.test("skd.conv_algo: get, set, restore, refuse unknown names", function()
  local prev = skd.conv_algo()
  T.eq(skd.conv_algo("winograd2"), prev)
  T.eq(skd.conv_algo(), "winograd2")
  T.eq(skd.conv_algo("direct"), "winograd2")
  T.raises(function() skd.conv_algo("fft") end, "conv_algo", "winograd4", "fft")
  T.eq(skd.conv_algo(), "direct")
  skd.conv_algo(prev)
  T.eq(skd.conv_algo(), prev)
end)

T.test("SKD_CONV_ALGO sets the default; an unknown value warns and means auto", function()
  local bin = os.getenv("SKD_BIN") or "./skd-lua"
  for _, v in ipairs({"direct", "winograd2", "winograd4", "auto"}) do
    local p = io.popen("SKD_CONV_ALGO=" .. v .. " " .. bin .. " -e 'io.write(skd.conv_algo())' 2>&1")
    T.eq(p:read("a"), v)
    p:close()
  end
  local p = io.popen("SKD_CONV_ALGO=fft " .. bin .. " -e 'io.write(\"[\" .. skd.conv_algo() .. \"]\")' 2>&1")
  local out = p:read("a")
  p:close()
  T.ok(out:find("SKD_CONV_ALGO", 1, true) and out:find("fft", 1, true), "no warning: " .. out)
  T.ok(out:find("[auto]", 1, true), "not auto: " .. out)
end)

-- Which path auto took shows in the bits: the same as the forced path's, different from the
-- other ones' (Winograd rounds differently from im2col).
-- With train, the weight requires grad: the training step's rule; else the forward's.
local function path_of(xs, ws, opts, train)
  local x, w = skd.randn(table.unpack(xs)), skd.randn(table.unpack(ws))
  if train then w:requires_grad(true) end
  local prev = skd.conv_algo("auto")
  local y = skd.conv2d(x, w, nil, opts):detach()
  local found
  for _, algo in ipairs({"direct", "winograd2", "winograd4"}) do
    skd.conv_algo(algo)
    local z = skd.conv2d(x, w, nil, opts):detach()
    if T.maxdiff(y, z) == 0 then found = found and (found .. "|" .. algo) or algo end
  end
  skd.conv_algo(prev)
  return found
end

T.test("auto, training: Winograd F(4,3) for ResNet layers, direct for thin layers and 4x4 maps", function()
  T.eq(path_of({2, 64, 16, 16}, {64, 64, 3, 3}, {padding = 1}, true), "winograd4")
  T.eq(path_of({2, 64, 16, 32}, {64, 64, 3, 3}, {padding = 2, dilation = 2}, true), "winograd4")
  T.eq(path_of({2, 128, 4, 4}, {128, 128, 3, 3}, {padding = 1}, true), "direct") -- tiny GEMMs
  T.eq(path_of({2, 3, 16, 16}, {4, 3, 3, 3}, {padding = 1}, true), "direct")
  -- stride 2: no fast path takes it, so every setting computes the same bits
  T.eq(path_of({2, 64, 16, 16}, {64, 64, 3, 3}, {padding = 1, stride = 2}, true), "direct|winograd2|winograd4")
end)

-- A forward alone pays the weight transform without backward passes to share it: at batch 1
-- a wide layer with few tiles takes F(2,3) (16 transformed taps per kernel, not 36), and a thin
-- one stays direct, where a training step takes F(4,3) for both.
-- SKD_WG_PACKED=0 (tests/test_winograd_unpacked.sh runs this file so) turns off the forward
-- on packed panels, which frozen layers at batch 1 and 2 take.
local packed = os.getenv("SKD_WG_PACKED") ~= "0"

T.test("auto: a forward alone has its own rule (frozen teacher at batch 1)", function()
  T.eq(path_of({1, 1024, 16, 32}, {256, 1024, 3, 3}, {padding = 1}, true), "winograd4")
  -- without a kernel in memory (packed) F(4,3)'s larger transformed kernel costs little more
  -- than F(2,3)'s; written out and packed again by BLIS, it made F(2,3) the faster at 32 tiles
  T.eq(path_of({1, 1024, 16, 32}, {256, 1024, 3, 3}, {padding = 1}), packed and "winograd4" or "winograd2")
  T.eq(path_of({1, 4096, 16, 32}, {512, 4096, 3, 3}, {padding = 1}), packed and "winograd4" or "winograd2")
  T.eq(path_of({1, 16, 32, 32}, {16, 16, 3, 3}, {padding = 1}, true), "winograd4")
  T.eq(path_of({1, 16, 32, 32}, {16, 16, 3, 3}, {padding = 1}), "direct")
  -- grad mode off decides it too, whatever requires grad
  local x, w = skd.randn(1, 1024, 16, 32), skd.randn(256, 1024, 3, 3)
  w:requires_grad(true)
  local y = skd.no_grad(function() return skd.conv2d(x, w, nil, {padding = 1}) end)
  local prev = skd.conv_algo(packed and "winograd4" or "winograd2")
  local z = skd.no_grad(function() return skd.conv2d(x, w, nil, {padding = 1}) end)
  skd.conv_algo(prev)
  T.eq(T.maxdiff(y, z), 0)
end)

T.done()
