-- conv2d: values by hand, gradients by finite differences, an independent reference built
-- from shifted 1x1 products (matmul on narrowed views) for the tiled paths, PyTorch where
-- installed, and errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(3)

local function shape(t) return table.concat(t:size(), "x") end

-- 1..n in row-major order, reshaped.
local function ramp(...)
  local s, n = {...}, 1
  for _, d in ipairs(s) do n = n * d end
  local v = {}
  for k = 1, n do v[k] = k end
  return skd.tensor(v):reshape(s)
end

-- ---------- by hand ----------

-- x = 1 2 3    w = 1 2    out[a][b] = sum_ij x[a+i][b+j] w[i][j]:
--     4 5 6        3 4    1+4+12+20 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77
--     7 8 9
T.test("3x3 input, 2x2 kernel, bias: forward and all gradients by hand", function()
  local x = ramp(1, 1, 3, 3):requires_grad()
  local w = skd.tensor({1, 2, 3, 4}):reshape(1, 1, 2, 2):requires_grad()
  local b = skd.tensor({1}):requires_grad()
  local y = skd.conv2d(x, w, b)
  T.eq(shape(y), "1x1x2x2")
  T.near(y, {38, 48, 68, 78}, 0)
  y:sum():backward()
  -- dx[p] = sum of the kernel entries that land on p over the four placements
  T.near(x.grad, {1, 3, 2, 4, 10, 6, 3, 7, 4}, 0)
  -- dw[i][j] = sum of the 2x2 window of x shifted by (i, j)
  T.near(w.grad, {12, 16, 24, 28}, 0)
  T.near(b.grad, {4}, 0)
end)

-- x = 1..16 in 4x4 (x[r][c] = 4r + c + 1), kernel 2x2 (1 2; 3 4), stride 2, padding 1,
-- dilation 2: output (2x2) pixel (a, b) reads rows 2a-1, 2a+1 and columns 2b-1, 2b+1.
--   (0,0): only x[1][1]=6 is inside          -> 4*6                    = 24
--   (0,1): x[1][1]=6 (w 3), x[1][3]=8 (w 4)  -> 18 + 32                = 50
--   (1,0): x[1][1]=6 (w 2), x[3][1]=14 (w 4) -> 12 + 56                = 68
--   (1,1): 6, 8, 14, 16 with 1, 2, 3, 4      -> 6 + 16 + 42 + 64       = 128
T.test("stride 2, padding 1, dilation 2 by hand", function()
  local x = ramp(1, 1, 4, 4):requires_grad()
  local w = skd.tensor({1, 2, 3, 4}):reshape(1, 1, 2, 2)
  local y = skd.conv2d(x, w, nil, {stride = 2, padding = 1, dilation = 2})
  T.eq(shape(y), "1x1x2x2")
  T.near(y, {24, 50, 68, 128}, 0)
  y:sum():backward()
  -- only x[1][1], x[1][3], x[3][1], x[3][3] are ever read: 6 is read 4 times (4+3+2+1),
  -- 8 twice (4+2), 14 twice (4+3), 16 once (4)
  T.near(x.grad, {0, 0, 0, 0, 0, 10, 0, 6, 0, 0, 0, 0, 0, 7, 0, 4}, 0)
end)

T.test("groups 2: each output channel sees only its group's input channels", function()
  local x = ramp(1, 2, 2, 2)                      -- channel 1: 1..4, channel 2: 5..8
  local w = skd.tensor({2, 3}):reshape(2, 1, 1, 1)
  local y = skd.conv2d(x, w, skd.tensor({0.5, -1}), {groups = 2})
  T.near(y, {2.5, 4.5, 6.5, 8.5, 14, 17, 20, 23}, 0)
  -- 4 groups of 1 -> asymmetric widths: 4 in, 2 out, groups 2, weight 2x2x1x2
  local x4 = ramp(1, 4, 1, 2)                     -- channels (1,2) (3,4) (5,6) (7,8)
  local w4 = skd.tensor({1, 0, 0, 1, 1, 1, -1, 1}):reshape(2, 2, 1, 2)
  -- out0 = x0[0]*1 + x0[1]*0 + x1[0]*0 + x1[1]*1 = 1 + 4 = 5
  -- out1 = x2[0] + x2[1] - x3[0] + x3[1] = 5 + 6 - 7 + 8 = 12
  T.near(skd.conv2d(x4, w4, nil, {groups = 2}), {5, 12}, 0)
end)

T.test("stride 2 subsamples; a 1x1 kernel reads the pixel under it", function()
  local x = ramp(1, 1, 3, 5)
  local y = skd.conv2d(x, skd.ones(1, 1, 1, 1), nil, {stride = 2})
  T.near(y, {1, 3, 5, 11, 13, 15}, 0)
  local y2 = skd.conv2d(x, skd.full({2, 1, 1, 1}, 2))  -- the 1x1 fast path
  T.near(y2:narrow(2, 2, 1), x * 2, 0)
end)

-- ---------- gradients by finite differences ----------

local function randg(...) return skd.randn(...):requires_grad() end

for _, c in ipairs({
  {"stride 2 padding 1 with bias", {2, 3, 7, 8}, {4, 3, 3, 3}, {stride = 2, padding = 1}, true},
  {"dilation 2 padding 2", {1, 2, 9, 9}, {3, 2, 3, 3}, {padding = 2, dilation = 2}, true},
  {"groups 2, 3x2 kernel, stride 2x1, padding 1x0, dilation 1x2", {2, 4, 8, 7}, {6, 2, 3, 2},
   {groups = 2, stride = {2, 1}, padding = {1, 0}, dilation = {1, 2}}, true},
  {"1x1 stride 1 (direct GEMM path)", {2, 5, 4, 3}, {3, 5, 1, 1}, {}, true},
  {"1x1 stride 1 groups 5", {2, 5, 3, 3}, {10, 1, 1, 1}, {groups = 5}, false},
  {"1x1 stride 2 (through im2col)", {2, 3, 5, 5}, {2, 3, 1, 1}, {stride = 2}, true},
  {"odd sizes 5x7, padding 1, no bias", {1, 3, 5, 7}, {2, 3, 3, 3}, {padding = 1}, false},
  {"kernel as large as the padded input", {1, 2, 3, 4}, {2, 2, 5, 4}, {padding = {1, 0}}, true},
}) do
  T.test("gradcheck conv2d " .. c[1], function()
    local x, w = randg(table.unpack(c[2])), randg(table.unpack(c[3]))
    local b = c[5] and randg(c[3][1]) or nil
    local inputs = {x, w, b}
    T.gradcheck(function(xx, ww, bb) return skd.conv2d(xx, ww, bb, c[4]) end, inputs,
                {eps = 1e-2, atol = 2e-3, rtol = 1e-2, max_checks = 60})
  end)
end

-- ---------- an independent reference for stride 1 ----------

-- conv as a sum over kernel taps of 1x1 products on shifted views of the zero-padded input:
-- no im2col, no col2im, and autograd through cat/narrow/matmul gives its gradients.
local function conv_by_taps(x, w, pad, dil)
  local n, c, h, wd = table.unpack(x:size())
  local co, _, kh, kw = table.unpack(w:size())
  local xp = x
  if pad > 0 then
    xp = skd.cat({skd.zeros(n, c, pad, wd), xp, skd.zeros(n, c, pad, wd)}, 3)
    xp = skd.cat({skd.zeros(n, c, h + 2 * pad, pad), xp, skd.zeros(n, c, h + 2 * pad, pad)}, 4)
  end
  local oh, ow = h + 2 * pad - dil * (kh - 1), wd + 2 * pad - dil * (kw - 1)
  local out
  for i = 0, kh - 1 do
    for j = 0, kw - 1 do
      local xs = xp:narrow(3, 1 + i * dil, oh):narrow(4, 1 + j * dil, ow):reshape(n, c, oh * ow)
      local wij = w:narrow(3, i + 1, 1):narrow(4, j + 1, 1):reshape(co, c)
      local term = skd.matmul(wij, xs)
      out = out and out + term or term
    end
  end
  return out:reshape(n, co, oh, ow)
end

local function compare_with_taps(name, xs, ws, pad, dil, tol)
  local x, w = randg(table.unpack(xs)), randg(table.unpack(ws))
  local r
  local y = skd.conv2d(x, w, nil, {padding = pad, dilation = dil})
  r = skd.randn(table.unpack(y:size()))
  ;(y * r):sum():backward()
  local gx, gw = x.grad, w.grad
  x.grad, w.grad = nil, nil
  local y2 = conv_by_taps(x, w, pad, dil)
  ;(y2 * r):sum():backward()
  T.eq(shape(y), shape(y2), name .. " shape")
  T.near(y, y2, tol, name .. " forward")
  T.near(gx, x.grad, tol, name .. " grad input")
  T.near(gw, w.grad, tol * 10, name .. " grad weight")
end

T.test("stacked small images match a tap-by-tap reference (3x3 pad 1, 3 images)", function()
  compare_with_taps("stacked", {3, 5, 9, 10}, {4, 5, 3, 3}, 1, 1, 1e-4)
end)

T.test("bands of output rows (large map, 512 channels, dilation 2) match the reference", function()
  -- 4608 column rows x 990 pixels exceed one tile: the map is cut into bands of rows whose
  -- col2im contributions overlap at the band edges
  compare_with_taps("bands", {1, 512, 30, 33}, {3, 512, 3, 3}, 2, 2, 2e-3)
end)

T.test("a batch equals its images convolved one by one (stacked vs single-image tiles)", function()
  local x, w, b = skd.randn(5, 3, 6, 7), skd.randn(4, 3, 3, 3), skd.randn(4)
  local p = {padding = 1, stride = {1, 2}}
  local y = skd.conv2d(x, w, b, p)
  for i = 1, 5 do
    T.near(y:narrow(1, i, 1), skd.conv2d(x:narrow(1, i, 1), w, b, p), 1e-5, "image " .. i)
  end
end)

T.test("non-contiguous input and weight give the contiguous result", function()
  local x = skd.randn(2, 3, 6, 5)
  local w = skd.randn(4, 3, 3, 3)
  local xt = x:transpose(3, 4):contiguous():transpose(3, 4)   -- same values, other strides
  local wt = w:permute(2, 1, 3, 4):contiguous():permute(2, 1, 3, 4)
  T.ok(not xt:is_contiguous() and not wt:is_contiguous(), "views are strided")
  T.near(skd.conv2d(xt, wt, nil, {padding = 1}), skd.conv2d(x, w, nil, {padding = 1}), 0)
end)

T.test("results and gradients are bit-identical across runs", function()
  local x, w, b = randg(4, 6, 11, 9), randg(8, 3, 3, 3), randg(8)
  local function run()
    x.grad, w.grad, b.grad = nil, nil, nil
    local y = skd.conv2d(x, w, b, {padding = 2, dilation = 2, groups = 2})
    ;(y * y):sum():backward()
    return y, x.grad, w.grad, b.grad
  end
  local a = {run()}
  local c = {run()}
  for k = 1, 4 do T.near(a[k], c[k], 0, "tensor " .. k) end
end)

T.test("an empty batch gives an empty output and zero weight gradients", function()
  local w = randg(4, 3, 3, 3)
  local y = skd.conv2d(skd.zeros(0, 3, 5, 5), w, nil, {padding = 1})
  T.eq(shape(y), "0x4x5x5")
  y:sum():backward()
  T.near(w.grad, skd.zeros(4, 3, 3, 3), 0)
end)

-- ---------- PyTorch as the reference ----------

local has_torch, why = R.available()
if not has_torch then
  T.skip("conv2d against PyTorch", why)
else
  local cases = {
    {"3x3 pad 1", {2, 3, 9, 8}, {4, 3, 3, 3}, {padding = 1}, "padding=1"},
    {"5x3 stride 2x1 pad 2x0 dil 1x2", {2, 3, 11, 10}, {5, 3, 5, 3},
     {stride = {2, 1}, padding = {2, 0}, dilation = {1, 2}},
     "stride=(2,1), padding=(2,0), dilation=(1,2)"},
    {"groups 3 stride 2 pad 1", {3, 6, 7, 7}, {9, 2, 3, 3}, {groups = 3, stride = 2, padding = 1},
     "groups=3, stride=2, padding=1"},
    {"dil 4 pad 4", {1, 4, 13, 12}, {3, 4, 3, 3}, {dilation = 4, padding = 4}, "dilation=4, padding=4"},
    {"1x1", {2, 8, 5, 6}, {3, 8, 1, 1}, {}, ""},
    {"1x1 stride 2 groups 2", {2, 4, 5, 6}, {6, 2, 1, 1}, {stride = 2, groups = 2}, "stride=2, groups=2"},
    {"7x7 stride 2 pad 3", {1, 3, 17, 15}, {4, 3, 7, 7}, {stride = 2, padding = 3}, "stride=2, padding=3"},
  }
  T.test("conv2d forward and input/weight/bias gradients match PyTorch", function()
    local code, outs, inputs, ours = {}, {}, {}, {}
    for k, c in ipairs(cases) do
      local x, w, b = randg(table.unpack(c[2])), randg(table.unpack(c[3])), randg(c[3][1])
      local y = skd.conv2d(x, w, b, c[4])
      local r = skd.randn(table.unpack(y:size()))
      ;(y * r):sum():backward()
      inputs["x" .. k], inputs["w" .. k], inputs["b" .. k], inputs["r" .. k] = x, w, b, r
      ours[k] = {y = y, gx = x.grad, gw = w.grad, gb = b.grad}
      code[#code + 1] = string.format(table.concat({
        "x, w, b = x%d.clone().requires_grad_(), w%d.clone().requires_grad_(), b%d.clone().requires_grad_()",
        "y%d = F.conv2d(x, w, b%s)",
        "(y%d * r%d).sum().backward()",
        "gx%d, gw%d, gb%d = x.grad, w.grad, b.grad"}, "\n"),
        k, k, k, k, c[5] ~= "" and ", " .. c[5] or "", k, k, k, k, k)
      for _, o in ipairs({"y", "gx", "gw", "gb"}) do outs[#outs + 1] = o .. k end
    end
    local ref = R.run(table.concat(code, "\n"), inputs, outs)
    for k, c in ipairs(cases) do
      T.eq(shape(ours[k].y), shape(ref["y" .. k]), c[1] .. " shape")
      for _, o in ipairs({"y", "gx", "gw", "gb"}) do
        T.near(ours[k][o], ref[o .. k], 1e-4, c[1] .. " " .. o)
      end
    end
  end)
end

-- ---------- bad input ----------

T.test("bad conv2d calls raise errors naming conv2d and the shapes", function()
  local x = skd.randn(2, 4, 8, 8)
  local bad = {
    {function() skd.conv2d(skd.randn(2, 4, 32, 32), skd.randn(8, 3, 3, 3)) end,
     "conv2d: weight expects 3 input channels, input has 4 (input 2x4x32x32)"},
    {function() skd.conv2d(skd.randn(4, 8, 8), skd.randn(2, 4, 3, 3)) end, "conv2d", "4-d input", "4x8x8"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3)) end, "conv2d", "4-d weight", "2x4x3", "2x4x8x8"},
    {function() skd.conv2d(x:int(), skd.randn(2, 4, 3, 3)) end, "conv2d", "float32", "int32", "2x4x8x8"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3):int()) end, "conv2d", "float32 weight", "int32"},
    {function() skd.conv2d(x, skd.randn(3, 2, 3, 3), nil, {groups = 3}) end,
     "conv2d", "groups=3", "4 channels", "2x4x8x8"},
    {function() skd.conv2d(x, skd.randn(3, 2, 3, 3), nil, {groups = 2}) end,
     "conv2d", "groups=2", "3 output channels", "3x2x3x3"},
    {function() skd.conv2d(x, skd.randn(4, 4, 3, 3), nil, {groups = 2}) end,
     "conv2d", "groups=2", "expects 8 input channels", "input has 4", "2x4x8x8"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), skd.randn(3)) end, "conv2d", "bias", "2 elements", "got 3"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), skd.randn(2, 1)) end, "conv2d", "bias", "2x1"},
    {function() skd.conv2d(x, skd.randn(2, 4, 9, 3)) end, "conv2d", "output size", "2x4x8x8", "9x3"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {dilation = 5}) end,
     "conv2d", "output size", "reach 11x11", "dilation 5x5"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {stride = 0}) end, "conv2d", "stride", "0x0"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {padding = {1, -1}}) end, "conv2d", "padding", "1x-1"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {dilation = {0, 1}}) end, "conv2d", "dilation", "0x1"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {groups = 0}) end, "conv2d", "groups", "got 0"},
    {function() skd.conv2d(x, skd.randn(2, 4, 0, 3)) end, "conv2d", "kernel size", "0x3"},
    {function() skd.conv2d(x, skd.randn(2, 4, 3, 3), nil, {stride = "two"}) end, "conv2d", "stride"},
    {function() skd.conv2d(nil, skd.randn(2, 4, 3, 3)) end, "tensor expected"},
  }
  for i, b in ipairs(bad) do
    local ok, err = pcall(T.raises, b[1], table.unpack(b, 2))
    if not ok then error("bad call " .. i .. ": " .. tostring(err)) end
  end
end)

T.done()
