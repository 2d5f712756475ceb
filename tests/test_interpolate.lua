-- interpolate: bilinear (align_corners true and false) and nearest, forward and backward.
-- Values by hand, gradients by finite differences, PyTorch as a reference where installed,
-- errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(2)

local function sq2() return skd.tensor({{{{1, 2}, {3, 4}}}}) end
local shape = T.shape

T.test("bilinear 2x2 -> 3x3 by hand, align_corners true and false", function()
  local want = {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}
  -- true: source = dst·(2−1)/(3−1) = 0, 0.5, 1
  T.near(skd.interpolate(sq2(), {3, 3}, {mode = "bilinear", align_corners = true}), want, 1e-7)
  -- false: source = (dst+0.5)·2/3 − 0.5 = −1/6 (clamped to 0), 0.5, 7/6 (past the last
  -- pixel: both taps on pixel 1), which gives the same grid for this size
  T.near(skd.interpolate(sq2(), {3, 3}, {mode = "bilinear", align_corners = false}), want, 1e-7)
  T.near(skd.interpolate(sq2(), {3, 3}), want, 1e-7) -- bilinear, align_corners=false by default
end)

T.test("bilinear 2x2 -> 4x4 by hand: the two alignments differ", function()
  -- false: sources −0.25 (→0), 0.25, 0.75, 1.25 (→ pixel 1 only): weights of pixel 1 are
  -- 0, 0.25, 0.75, 1 along each axis
  local r0, r1 = {1, 1.25, 1.75, 2}, {3, 3.25, 3.75, 4}
  local want = {}
  for _, a in ipairs({0, 0.25, 0.75, 1}) do
    for j = 1, 4 do want[#want + 1] = (1 - a) * r0[j] + a * r1[j] end
  end
  T.near(skd.interpolate(sq2(), {4, 4}), want, 1e-6)
  -- true: sources 0, 1/3, 2/3, 1
  want = {}
  for _, a in ipairs({0, 1 / 3, 2 / 3, 1}) do
    for _, b in ipairs({0, 1 / 3, 2 / 3, 1}) do
      want[#want + 1] = 1 + b + 2 * a
    end
  end
  T.near(skd.interpolate(sq2(), {4, 4}, {align_corners = true}), want, 1e-6)
end)

T.test("bilinear downsampling 4x4 -> 2x2 averages pixel pairs (align_corners=false)", function()
  local x = skd.arange(16):reshape(1, 1, 4, 4)
  -- sources 0.5 and 2.5 along each axis
  T.near(skd.interpolate(x, {2, 2}), {2.5, 4.5, 10.5, 12.5}, 1e-6)
  -- align_corners=true: sources 0 and 3, the corners
  T.near(skd.interpolate(x, {2, 2}, {align_corners = true}), {0, 3, 12, 15}, 1e-6)
  -- one output pixel with align_corners=true reads the top-left corner (scale 0)
  T.near(skd.interpolate(x, {1, 1}, {align_corners = true}), {0}, 0)
end)

T.test("nearest by hand: floor(dst·in/out)", function()
  T.near(skd.interpolate(sq2(), {3, 3}, {mode = "nearest"}), {1, 1, 2, 1, 1, 2, 3, 3, 4}, 0)
  local x = skd.arange(16):reshape(1, 1, 4, 4)
  T.near(skd.interpolate(x, {2, 2}, {mode = "nearest"}), {0, 2, 8, 10}, 0)
  -- 4 -> 3: floor(0), floor(4/3), floor(8/3) = 0, 1, 2
  T.near(skd.interpolate(x, {1, 3}, {mode = "nearest"}), {0, 1, 2}, 0)
end)

T.test("backward by hand: nearest counts uses, bilinear sums weights", function()
  local x = sq2():requires_grad()
  skd.interpolate(x, {3, 3}, {mode = "nearest"}):sum():backward()
  T.near(x.grad, {4, 2, 2, 1}, 0)
  x = sq2():requires_grad()
  skd.interpolate(x, {3, 3}, {align_corners = true}):sum():backward()
  -- along one axis the taps are (1,0), (.5,.5), (0,1): each source gets 1.5, so 2.25 in 2-d
  T.near(x.grad, {2.25, 2.25, 2.25, 2.25}, 1e-6)
end)

T.test("gradcheck bilinear (both alignments) up and down, and nearest", function()
  for _, ac in ipairs({false, true}) do
    T.gradcheck(function(x) return skd.interpolate(x, {7, 5}, {align_corners = ac}) end,
                {skd.randn(2, 2, 3, 4):requires_grad()})
    T.gradcheck(function(x) return skd.interpolate(x, {3, 4}, {align_corners = ac}) end,
                {skd.randn(1, 2, 7, 6):requires_grad()})
  end
  T.gradcheck(function(x) return skd.interpolate(x, {7, 5}, {mode = "nearest"}) end,
              {skd.randn(2, 2, 3, 4):requires_grad()})
  T.gradcheck(function(x) return skd.interpolate(x, {3, 4}, {mode = "nearest"}) end,
              {skd.randn(1, 2, 7, 6):requires_grad()})
end)

T.test("interpolate repeats bit for bit across thread counts", function()
  local x = skd.randn(2, 8, 33, 35)
  local g = skd.randn(2, 8, 65, 69)
  T.same_at_threads(function()
    local xx = x:clone():requires_grad()
    local y = skd.interpolate(xx, {65, 69}, {align_corners = true})
    ;(y * g):sum():backward()
    return y, xx.grad
  end)
end)

-- ---------- PyTorch as the reference ----------

R.test("interpolate forward and backward match PyTorch", function()
  local cases = {}
  for _, io in ipairs({
    {{5, 7}, {9, 13}}, {{13, 11}, {33, 17}}, {{13, 11}, {4, 5}}, {{6, 6}, {6, 6}},
    {{5, 4}, {10, 8}}, {{7, 9}, {1, 1}}, {{1, 3}, {4, 7}}, {{16, 16}, {129, 127}},
  }) do
    for _, m in ipairs({{"bilinear", true}, {"bilinear", false}, {"nearest", false}}) do
      cases[#cases + 1] = {io[1], io[2], m[1], m[2]}
    end
  end
  local code, outs, inputs, ours = {}, {}, {}, {}
  for k, c in ipairs(cases) do
    local x = skd.randn(2, 3, c[1][1], c[1][2]):requires_grad()
    local y = skd.interpolate(x, c[2], {mode = c[3], align_corners = c[4]})
    local r = skd.randn(table.unpack(y:size()))
    ;(y * r):sum():backward()
    inputs["x" .. k], inputs["r" .. k] = x, r
    ours[k] = {y, x.grad}
    local ac = c[3] == "bilinear" and (c[4] and ", align_corners=True" or ", align_corners=False") or ""
    code[#code + 1] = string.format(
      "x%d.requires_grad_(); y%d = F.interpolate(x%d, size=(%d, %d), mode='%s'%s); " ..
      "(y%d * r%d).sum().backward(); g%d = x%d.grad",
      k, k, k, c[2][1], c[2][2], c[3], ac, k, k, k, k)
    outs[#outs + 1] = "y" .. k
    outs[#outs + 1] = "g" .. k
  end
  local ref = R.run(table.concat(code, "\n"), inputs, outs)
  for k, c in ipairs(cases) do
    local name = string.format("%dx%d->%dx%d %s ac=%s", c[1][1], c[1][2], c[2][1], c[2][2],
                               c[3], tostring(c[4]))
    T.eq(shape(ours[k][1]), shape(ref["y" .. k]), name .. " shape")
    T.near(ours[k][1], ref["y" .. k], 1e-6, name .. " forward")
    -- the backward sums up to ~64 shares per input in a different order from PyTorch's
    -- (separable: rows first), so it agrees to float32 rounding relative to the gradient
    local gmax = ref["g" .. k]:abs():max():item()
    T.near(ours[k][2], ref["g" .. k], 1e-6 * math.max(10, gmax), name .. " backward")
  end
end)

-- ---------- bad input ----------

T.test("bad interpolate calls raise errors naming the op and the problem", function()
  local x = skd.randn(1, 2, 4, 4)
  local bad = {
    {function() skd.interpolate(skd.randn(2, 4, 4), {8, 8}) end, "interpolate", "4-d", "2x4x4"},
    {function() skd.interpolate(x:int(), {8, 8}) end, "interpolate", "float32", "int32"},
    {function() skd.interpolate(x, {0, 8}) end, "interpolate", "at least 1x1", "0x8"},
    {function() skd.interpolate(x, {8}) end, "interpolate", "output size"},
    {function() skd.interpolate(x, {8, 8}, {mode = "bicubic"}) end, "interpolate", "mode", "bicubic"},
    {function() skd.interpolate(x, {8, 8}, {mode = "nearest", align_corners = true}) end,
     "interpolate", "align_corners", "nearest"},
    {function() skd.interpolate(nil, {8, 8}) end, "tensor expected"},
  }
  T.raises_each(bad)
end)

T.done()
