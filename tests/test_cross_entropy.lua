-- cross_entropy(logits (N,C,...), target (N,...) int32 class ids, {ignore_index, reduction,
-- weight}):
-- values and gradients by hand, the all-ignored case, finite differences, PyTorch as a
-- reference where installed, errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(6)

local function int(t) return skd.tensor(t, {dtype = "int32"}) end

-- three pixels of a 1x3x1x3 map: logits {1,2,3}, {1,0,-1}, {1,0,-1}; targets 2, 255, 1
local function three_pixels()
  return skd.tensor({1, 1, 1, 2, 0, 0, 3, -1, -1}):reshape(1, 3, 1, 3), int({2, 255, 1}):reshape(1, 1, 3)
end
local Z = 1 + math.exp(-1) + math.exp(-2)
local L1 = math.log(Z)      -- −log softmax({1,2,3})[3]
local L3 = 1 + math.log(Z)  -- −log softmax({1,0,−1})[2]: log(e + 1 + 1/e) − 0

T.test("values by hand on 3 pixels, one ignored: mean, sum, none", function()
  local z, y = three_pixels()
  T.near(skd.cross_entropy(z, y), (L1 + L3) / 2, 1e-6)              -- default: mean, ignore 255
  T.near(skd.cross_entropy(z, y, {reduction = "sum"}), L1 + L3, 1e-6)
  local none = skd.cross_entropy(z, y, {reduction = "none"})
  T.eq(table.concat(none:size(), "x"), "1x1x3")
  T.near(none, {L1, 0, L3}, 1e-6)
  -- another ignore_index: now 255 would be out of range, so use 1 as the ignored class
  local y2 = int({2, 0, 1}):reshape(1, 1, 3)
  local L2 = math.log(Z) -- −log softmax({1,0,−1})[1]
  T.near(skd.cross_entropy(z, y2, {ignore_index = 1}), (L1 + L2) / 2, 1e-6)
end)

T.test("gradient by hand: (softmax − onehot)/count, zero at the ignored pixel", function()
  local z, y = three_pixels()
  z:requires_grad()
  skd.cross_entropy(z, y):backward()
  local p1 = {math.exp(-2) / Z, math.exp(-1) / Z, 1 / Z}   -- softmax {1,2,3}
  local p3 = {1 / Z, math.exp(-1) / Z, math.exp(-2) / Z}   -- softmax {1,0,-1}
  -- layout (c, pixel): pixel 1 target class index 2 (third), pixel 3 class 1 (second)
  local want = {
    p1[1] / 2, 0, p3[1] / 2,
    p1[2] / 2, 0, (p3[2] - 1) / 2,
    (p1[3] - 1) / 2, 0, p3[3] / 2,
  }
  T.near(z.grad, want, 1e-6)
end)

T.test("class weights by hand: the mean divides by the targets' weights, as PyTorch", function()
  local z, y = three_pixels()                    -- targets 2, 255, 1 (0-based)
  local a = skd.tensor({5, 0.5, 3})              -- pixel 1 weighs a[2] = 3, pixel 3 a[1] = 0.5
  T.near(skd.cross_entropy(z, y, {weight = a}), (3 * L1 + 0.5 * L3) / 3.5, 1e-6)
  T.near(skd.cross_entropy(z, y, {weight = a, reduction = "sum"}), 3 * L1 + 0.5 * L3, 1e-5)
  T.near(skd.cross_entropy(z, y, {weight = a, reduction = "none"}), {3 * L1, 0, 0.5 * L3}, 1e-6)
  z:requires_grad()
  skd.cross_entropy(z, y, {weight = a}):backward()
  local p1 = {math.exp(-2) / Z, math.exp(-1) / Z, 1 / Z}
  local p3 = {1 / Z, math.exp(-1) / Z, math.exp(-2) / Z}
  local s1, s3 = 3 / 3.5, 0.5 / 3.5
  T.near(z.grad, {p1[1] * s1, 0, p3[1] * s3,
                  p1[2] * s1, 0, (p3[2] - 1) * s3,
                  (p1[3] - 1) * s1, 0, p3[3] * s3}, 1e-6)
  -- weights of 0 on every present class: the mean is 0, not 0/0
  T.eq(skd.cross_entropy(z, y, {weight = skd.tensor({1, 0, 0})}):item(), 0)
end)

T.test("all pixels ignored: mean is 0 with a zero gradient (PyTorch gives NaN)", function()
  local z = skd.randn(2, 4, 3, 3):requires_grad()
  local y = skd.full({2, 3, 3}, 255):int()
  local l = skd.cross_entropy(z, y)
  T.eq(l:item(), 0)
  l:backward()
  T.near(z.grad, skd.zeros(2, 4, 3, 3), 0)
  T.eq(skd.cross_entropy(z, y, {reduction = "sum"}):item(), 0)
end)

T.test("(N,C) logits with (N) targets, and large logits stay finite", function()
  local z = skd.tensor({{1000, 0}, {0, 1000}})
  T.near(skd.cross_entropy(z, int({0, 1})), 0, 1e-6)
  T.near(skd.cross_entropy(z, int({1, 1}), {reduction = "sum"}), 1000, 1e-3)
end)

-- random targets in [0, C) with some set to 255
local function targets(n, c, h, w, ignored_every)
  local v = {}
  for i = 1, n * h * w do
    v[i] = (i % ignored_every == 0) and 255 or math.floor(skd.rand(1):item() * c)
  end
  return int(v):reshape(n, h, w)
end

T.test("gradcheck with ignored pixels: mean, sum, none", function()
  local y = targets(2, 5, 3, 4, 4)
  local z = skd.randn(2, 5, 3, 4):requires_grad()
  for _, red in ipairs({"mean", "sum", "none"}) do
    T.gradcheck(function(t) return skd.cross_entropy(t, y, {reduction = red}) end, {z})
  end
  -- through a non-contiguous logits view
  local zt = skd.randn(2, 5, 4, 3):requires_grad()
  T.gradcheck(function(t) return skd.cross_entropy(t:transpose(3, 4), y) end, {zt})
end)

T.test("gradcheck with class weights: mean, sum, none", function()
  local y = targets(2, 5, 3, 4, 4)
  local z = skd.randn(2, 5, 3, 4):requires_grad()
  local a = skd.tensor({0.2, 1.5, 3, 0, 0.7})
  for _, red in ipairs({"mean", "sum", "none"}) do
    T.gradcheck(function(t) return skd.cross_entropy(t, y, {reduction = red, weight = a}) end, {z})
  end
end)

T.test("cross_entropy repeats bit for bit across thread counts", function()
  local y = targets(4, 19, 64, 64, 7)
  local z = skd.randn(4, 19, 64, 64)
  T.same_at_threads(function()
    local zz = z:clone():requires_grad()
    local l = skd.cross_entropy(zz, y)
    l:backward()
    return l:item(), zz.grad
  end)
end)

R.test("cross_entropy with class weights matches PyTorch (mean, sum, none)", function()
  local z, y, w = skd.randn(3, 6, 5, 7) * 2, targets(3, 6, 5, 7, 5), skd.randn(3, 5, 7)
  local a = skd.rand(6) * 4
  local ref = R.run([[
outs = {}
for red in ("mean", "sum", "none"):
  zz = z.clone().requires_grad_()
  l = F.cross_entropy(zz, y, weight=a, ignore_index=255, reduction=red)
  (l if red != "none" else (l * w).sum()).backward()
  outs[red] = (l, zz.grad)
lm, gm = outs["mean"]
ls, gs = outs["sum"]
ln, gn = outs["none"]
]], {z = z, y = y, w = w, a = a}, {"lm", "gm", "ls", "gs", "ln", "gn"})
  for _, red in ipairs({"mean", "sum", "none"}) do
    local zz = z:clone():requires_grad()
    local l = skd.cross_entropy(zz, y, {reduction = red, weight = a})
    ;(red == "none" and (l * w):sum() or l):backward()
    local tol = red == "sum" and 1e-3 or 1e-5
    T.near(l, ref["l" .. red:sub(1, 1)], tol, red)
    T.near(zz.grad, ref["g" .. red:sub(1, 1)], tol / 10, red .. " grad")
  end
end)

R.test("cross_entropy matches PyTorch (mean, sum, none; ignore 255)", function()
  local z, y, w = skd.randn(3, 6, 5, 7) * 2, targets(3, 6, 5, 7, 5), skd.randn(3, 5, 7)
  local ref = R.run([[
outs = {}
for red in ("mean", "sum", "none"):
  zz = z.clone().requires_grad_()
  l = F.cross_entropy(zz, y, ignore_index=255, reduction=red)
  (l if red != "none" else (l * w).sum()).backward()
  outs[red] = (l, zz.grad)
lm, gm = outs["mean"]
ls, gs = outs["sum"]
ln, gn = outs["none"]
]], {z = z, y = y, w = w}, {"lm", "gm", "ls", "gs", "ln", "gn"})
  local function ours(red, weight)
    local zz = z:clone():requires_grad()
    local l = skd.cross_entropy(zz, y, {reduction = red})
    ;(weight and (l * weight):sum() or l):backward()
    return l, zz.grad
  end
  local lm, gm = ours("mean")
  T.near(lm, ref.lm, 1e-5, "mean")
  T.near(gm, ref.gm, 1e-6, "mean grad")
  local ls, gs = ours("sum")
  T.near(ls, ref.ls, 1e-3, "sum")
  T.near(gs, ref.gs, 1e-5, "sum grad")
  local ln, gn = ours("none", w)
  T.near(ln, ref.ln, 1e-5, "none")
  T.near(gn, ref.gn, 1e-5, "none grad")
end)

T.test("bad cross_entropy calls raise errors naming the op, value, position and shapes", function()
  local z = skd.randn(2, 3, 4, 4)
  local y = skd.zeros(2, 4, 4):int()
  local bad_value = y:clone()
  bad_value:set(7, 2, 3, 1)
  local negative = y:clone()
  negative:set(-1, 1, 1, 2)
  local bad = {
    {function() skd.cross_entropy(z, bad_value) end, "cross_entropy", "target value 7",
     "position (2,3,1)", "[0, 3)", "ignore_index 255"},
    {function() skd.cross_entropy(z, negative, {ignore_index = -100}) end, "cross_entropy",
     "target value -1", "position (1,1,2)", "ignore_index -100"},
    {function() skd.cross_entropy(z, y:float()) end, "cross_entropy", "int32", "float32", ":int()"},
    {function() skd.cross_entropy(z:int(), y) end, "cross_entropy", "logits", "float32"},
    {function() skd.cross_entropy(z, skd.zeros(2, 5, 4):int()) end, "cross_entropy",
     "target shape 2x5x4", "logits 2x3x4x4", "expected target 2x4x4"},
    {function() skd.cross_entropy(z, skd.zeros(2, 3, 4, 4):int()) end, "cross_entropy",
     "2x3x4x4", "expected target 2x4x4"},
    {function() skd.cross_entropy(skd.randn(3), skd.zeros(3):int()) end, "cross_entropy", "2 dims"},
    {function() skd.cross_entropy(z, y, {reduction = "avg"}) end, "cross_entropy", "reduction", "avg"},
    {function() skd.cross_entropy(z, nil) end, "tensor expected"},
    {function() skd.cross_entropy(z, y, {weight = skd.ones(4)}) end, "cross_entropy",
     "class weights", "vector of 3", "2x3x4x4", "float32 4"},
    {function() skd.cross_entropy(z, y, {weight = skd.ones(3):int()}) end, "cross_entropy",
     "class weights", "int32"},
    {function() skd.cross_entropy(z, y, {weight = skd.tensor({1, -2, 1})}) end, "cross_entropy",
     "class weight 2 is -2", ">= 0"},
    {function() skd.cross_entropy(z, y, {weight = skd.tensor({1, 0 / 0, 1})}) end, "cross_entropy",
     "class weight 2", "finite"},
    {function() skd.cross_entropy(z, y, {weight = {1, 2, 3}}) end, "cross_entropy",
     "option 'weight' expects a tensor", "table"},
  }
  T.raises_each(bad)
end)

T.done()
