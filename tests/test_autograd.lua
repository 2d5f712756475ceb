-- Autograd engine and elementwise/reduction/shape ops: values by hand, gradients by finite
-- differences, errors by message.
local T = require "harness"
skd.manual_seed(1)

T.test("add/mul broadcast values by hand", function()
  local a = skd.tensor({{1, 2}, {3, 4}})
  local b = skd.tensor({10, 20})
  T.near(a + b, {{11, 22}, {13, 24}}, 0)
  T.near(a * b, {{10, 40}, {30, 80}}, 0)
  T.near(a - 1, {{0, 1}, {2, 3}}, 0)
  T.near(1 - a, {{0, -1}, {-2, -3}}, 0)
  T.near(a / 2, {{0.5, 1}, {1.5, 2}}, 0)
  T.near(2 / a, {{2, 1}, {2 / 3, 0.5}}, 1e-7)
  T.near(-a, {{-1, -2}, {-3, -4}}, 0)
end)

T.test("backward through a small expression by hand", function()
  local a = skd.tensor({{1, 2}, {3, 4}}):requires_grad()
  local b = skd.tensor({10, 20}):requires_grad()
  local c = (a * b + 1):sum()
  T.eq(c:item(), 164.0)
  c:backward()
  T.near(a.grad, {{10, 20}, {10, 20}}, 0)
  T.near(b.grad, {4, 6}, 0)           -- column sums of a
end)

T.test("gradients accumulate across backward calls", function()
  local x = skd.tensor({1, 2, 3}):requires_grad()
  ;(x * 2):sum():backward()
  ;(x * 3):sum():backward()
  T.near(x.grad, {5, 5, 5}, 0)
  x.grad = nil
  T.eq(x.grad, nil)
end)

T.test("a second backward through a freed graph is an error", function()
  local x = skd.tensor({1, 2}):requires_grad()
  local y = (x:exp()):sum()
  y:backward()
  T.raises(function() y:backward() end, "second time")
end)

T.test("no_grad records nothing and restores the mode after errors", function()
  local x = skd.ones(2):requires_grad()
  local y = skd.no_grad(function() return x * 2 end)
  T.eq(y.grad_fn, nil)
  pcall(skd.no_grad, function() error("boom") end)
  T.ok(skd.grad_enabled(), "grad mode restored")
end)

T.test("diamond graph: a shared input gets both contributions", function()
  local x = skd.tensor({0.5, -1.5}):requires_grad()
  local y = x:exp()
  local z = (y * y + y:tanh()):sum()
  z:backward()
  local e = x:detach():exp()
  local want = e * e * 2 + (1 - e:tanh() * e:tanh()) * e
  T.near(x.grad, want, 1e-5)
end)

local function randg(...) return skd.randn(...):requires_grad() end

for _, case in ipairs({
  {"add", function(a, b) return a + b end, {3, 4}, {4}},
  {"sub", function(a, b) return a - b end, {2, 1, 4}, {3, 1}},
  {"mul", function(a, b) return a * b end, {3, 4}, {3, 1}},
  {"div", function(a, b) return a / (b:abs() + 0.5) end, {2, 3}, {2, 3}},
  -- a weight over a 0-d σ (spectral norm), and a per-channel gain over (N,C,H,W)
  {"div by a 0-d tensor", function(a, b) return a / (b:abs() + 0.5) end, {3, 2, 2, 2}, {}},
  {"mul by a 0-d tensor", function(a, b) return b * a end, {4, 3}, {}},
  {"mul per channel", function(a, b) return a * b end, {2, 3, 2, 4}, {3, 1, 1}},
}) do
  T.test("gradcheck " .. case[1] .. " with broadcasting", function()
    T.gradcheck(case[2], {randg(case[3]), randg(case[4])})
  end)
end

for _, case in ipairs({
  {"relu", function(x) return skd.relu(x) end},
  {"leaky_relu", function(x) return x:leaky_relu(0.1) end},
  {"sigmoid", function(x) return x:sigmoid() end},
  {"tanh", function(x) return x:tanh() end},
  {"exp", function(x) return x:exp() end},
  {"log", function(x) return (x:abs() + 0.5):log() end},
  {"sqrt", function(x) return (x:abs() + 0.5):sqrt() end},
  {"abs", function(x) return x:abs() end},
  {"pow", function(x) return (x:abs() + 0.5):pow(2.5) end},
  {"scalar ops", function(x) return (3 - x) * 2 / 4 + 1 - 2 / (x:abs() + 1) end},
}) do
  T.test("gradcheck " .. case[1], function()
    -- keep inputs away from the kinks of relu/abs, where differences are not derivatives
    local x = skd.randn(3, 5)
    x = x * ((x:abs() + 0.1) / x:abs())
    T.gradcheck(case[2], {x:requires_grad()})
  end)
end

-- Broadcast arithmetic walks merged dimensions (a scalar operand as one strided row, a
-- per-channel one as rows of H·W, transposed views as they lie): every layout gives the
-- element-by-element values.
T.test("broadcast arithmetic over merged dimensions equals the element loop", function()
  local x = skd.randn(2, 3, 4, 5)
  local xt = x:transpose(3, 4) -- (2, 3, 5, 4), not contiguous
  local c = skd.randn(3, 1, 1)
  local s0 = skd.tensor(2.5):reshape({})
  local function check(name, got, ref, src)
    local n = 0
    for i = 1, 2 do for j = 1, 3 do for k = 1, src:size(3) do for l = 1, src:size(4) do
      local want = ref(src:get(i, j, k, l), c:get(j, 1, 1))
      local have = got:get(i, j, k, l)
      if math.abs(have - want) > 1e-6 * math.max(1, math.abs(want)) then n = n + 1 end
    end end end end
    T.eq(n, 0, name .. ": elements that differ")
  end
  check("x / 0-d", x / s0, function(v) return v / 2.5 end, x)
  check("0-d - x", s0 - x, function(v) return 2.5 - v end, x)
  check("x + c", x + c, function(v, w) return v + w end, x)
  check("c * xt", c * xt, function(v, w) return w * v end, xt)
  check("xt - c", xt - c, function(v, w) return v - w end, xt)
  local big = skd.randn(3, 70000) -- rows longer than one thread's block
  local sum = (big + big * 2):sum():item()
  T.near(sum, 3 * big:sum():item(), 1e-2)
end)

T.test("sum/mean/max values and gradients", function()
  local x = skd.tensor({{1, 5, 3}, {4, 2, 6}})
  T.eq(x:sum():item(), 21)
  T.near(x:sum(1), {5, 7, 9}, 0)
  T.near(x:sum(2), {9, 12}, 0)
  T.near(x:mean(2, true), {{3}, {4}}, 0)
  T.eq(x:max():item(), 6)
  local v, i = x:max(2)
  T.near(v, {5, 6}, 0)
  T.near(i, {2, 3}, 0)
  T.near(x:argmax(1), {2, 1, 2}, 0)
  local y = randg(3, 4, 5)
  T.gradcheck(function(t) return t:sum() end, {y})
  T.gradcheck(function(t) return t:mean(2) end, {y})
  T.gradcheck(function(t) return t:sum(3, true) end, {y})
  -- max: distinct values at least 0.1 apart, so that no finite-difference step crosses a tie
  local order = {}
  for k = 1, 60 do order[k] = k end
  for k = 60, 2, -1 do local r = math.floor(skd.rand(1):item() * k) + 1; order[k], order[r] = order[r], order[k] end
  local spaced = skd.tensor(order):reshape(3, 4, 5) * 0.1
  T.gradcheck(function(t) return (t:max(1)) end, {spaced:requires_grad()})
  T.gradcheck(function(t) return t:max() end, {spaced:requires_grad()})
end)

T.test("views: values and gradients", function()
  local x = skd.arange(24):reshape(2, 3, 4)
  T.eq(x:get(2, 3, 4), 23)
  T.eq(x:transpose(1, 3):get(4, 3, 2), 23)
  T.near(x:narrow(3, 2, 2):select(1, 2):select(1, 1), {13, 14}, 0)
  T.eq(x:permute(3, 1, 2):size(1), 4)
  T.eq(x[2][3][4], 23)
  local y = randg(2, 3, 4)
  T.gradcheck(function(t) return t:permute(3, 1, 2):contiguous() end, {y})
  T.gradcheck(function(t) return t:narrow(2, 2, 2) * 3 end, {y})
  T.gradcheck(function(t) return t:select(3, 4) end, {y})
  T.gradcheck(function(t) return t:reshape(6, -1):transpose(1, 2):sum(2) end, {y})
  T.gradcheck(function(t) return t:unsqueeze(1):squeeze(1):clone() end, {y})
  T.gradcheck(function(t) return t:sum(1, true):expand(5, 3, 4) end, {y})
end)

T.test("flip: values and gradient", function()
  local x = skd.arange(6):reshape(2, 3)
  T.near(x:flip(2), {{2, 1, 0}, {5, 4, 3}}, 0)
  T.near(x:flip(1), {{3, 4, 5}, {0, 1, 2}}, 0)
  T.near(x:transpose(1, 2):flip(1), {{2, 5}, {1, 4}, {0, 3}}, 0)
  T.gradcheck(function(t) return t:flip(3) * t end, {randg(2, 3, 4)})
end)

T.test("cat and split: values and gradients", function()
  local a, b = skd.tensor({{1, 2}}), skd.tensor({{3, 4}, {5, 6}})
  T.near(skd.cat({a, b}, 1), {{1, 2}, {3, 4}, {5, 6}}, 0)
  local parts = skd.split(skd.arange(5), 2, 1)
  T.eq(#parts, 3)
  T.near(parts[3], {4}, 0)
  local x, y = randg(2, 3), randg(2, 2)
  T.gradcheck(function(p, q) return skd.cat({p, q, p}, 2) end, {x, y})
  T.gradcheck(function(p) local s = skd.split(p, 2, 2); return s[1] * s[2]:exp() end, {randg(3, 4)})
end)

T.test("cat of large tensors (the threads' pieces), any dim, a strided part, and its backward", function()
  -- a PSPNet pyramid's concatenation at batch 2: rows of 2 x 600 x 200 floats, each more than
  -- one piece of 65536; values checked against narrow, gradients against the slices of g
  skd.manual_seed(11)
  local a, b = skd.randn(2, 600, 10, 20), skd.randn(2, 300, 20, 10):transpose(3, 4) -- b strided
  local c = skd.randn(2, 100, 10, 20, {requires_grad = true})
  for _, dim in ipairs{1, 2, 3, 4} do
    local parts = {a, b:contiguous(), b, c:detach()}
    if dim ~= 2 then parts = {a, a * 2, skd.randn(2, 600, 20, 10):transpose(3, 4)} end
    local out = skd.cat(parts, dim)
    local start = 1
    for _, t in ipairs(parts) do
      T.near(out:narrow(dim, start, t:size(dim)), t, 0)
      start = start + t:size(dim)
    end
  end
  local ints = skd.cat({skd.arange(70000):int():reshape(1, 70000), skd.zeros(1, 70000, {dtype = "int32"})}, 1)
  T.eq(ints:dtype(), "int32")
  T.eq(ints:get(1, 69999), 69998)
  local x = a:clone():requires_grad()
  local y = skd.cat({x, c, x}, 2)
  local g = skd.randn(2, 1300, 10, 20);
  (y * g):sum():backward()
  T.near(x.grad, g:narrow(2, 1, 600) + g:narrow(2, 701, 600), 1e-6)
  T.near(c.grad, g:narrow(2, 601, 100), 0)
end)

T.test("copy_ between layouts: transposed, expanded, sliced, large, into views", function()
  skd.manual_seed(12)
  local function check(dst, src, what)
    dst:copy_(src)
    T.near(dst, src * 1, 0, what)                -- src * 1: the element-wise kernels' reading
  end
  check(skd.empty(300, 400), skd.randn(400, 300):transpose(1, 2), "from a transpose")
  check(skd.empty(400, 300):transpose(1, 2), skd.randn(300, 400), "into a transpose")
  check(skd.empty(3, 70000), skd.randn(70000):reshape(1, 70000):expand(3, 70000), "from an expansion")
  check(skd.empty(2, 600, 10, 20), skd.randn(2, 600, 20, 10):transpose(3, 4), "4-d, last two swapped")
  local big = skd.zeros(2, 900, 10, 20)
  check(big:narrow(2, 101, 600), skd.randn(2, 600, 10, 20), "into a slice (cat's parts)")
  T.eq(big:narrow(2, 1, 100):abs():sum():item(), 0, "outside the slice untouched")
  check(skd.empty(5, 1, 7):narrow(3, 2, 4), skd.randn(5, 1, 4), "a size-1 dim")
  check(skd.tensor(0), skd.tensor(3.5), "0-d")
  local ints = skd.zeros(100000, {dtype = "int32"})
  ints:copy_(skd.arange(100000):int())
  T.eq(ints:get(99999), 99998, "int32")
  -- the same storage, overlapping: as if through a temporary
  local t = skd.arange(10)
  t:narrow(1, 2, 9):copy_(t:narrow(1, 1, 9))
  T.near(t, {0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, 0)
  -- same element count, different shapes
  local u = skd.empty(2, 3)
  u:copy_(skd.arange(6))
  T.near(u, {{0, 1, 2}, {3, 4, 5}}, 0)
  -- fill_ of large tensors (the threads' path), int32, and a strided view
  local f = skd.empty(300000):fill_(-2.5)
  T.eq(f:max():item(), -2.5); T.eq((-f):max():item(), 2.5)
  local fi = skd.empty(300000, {dtype = "int32"}):fill_(7.9)
  T.eq(fi:get(300000), 7)
  local g = skd.zeros(600, 600)
  g:transpose(1, 2):narrow(1, 1, 300):fill_(1)
  T.eq(g:sum():item(), 180000)
  T.eq(g:narrow(2, 301, 300):sum():item(), 0)
end)

T.test("bad input: errors name the op and the shapes", function()
  T.raises(function() return skd.zeros(2, 3) + skd.zeros(4) end, "add", "2x3", "4")
  T.raises(function() return skd.zeros(2, 3):reshape(4, 2) end, "reshape", "2x3", "4x2")
  T.raises(function() return skd.zeros(2, 3):narrow(2, 3, 2) end, "narrow", "dimension 2")
  T.raises(function() return skd.zeros(2, 3):select(1, 3) end, "select", "index 3", "size 2")
  T.raises(function() return skd.zeros(2, 3):sum(3) end, "dimension 3 out of range")
  T.raises(function() return skd.zeros(2, 3):transpose(1, nil) end, "number expected")
  T.raises(function() return skd.relu(nil) end, "tensor expected")
  T.raises(function() return skd.zeros(2, {dtype = "int32"}):exp() end, "exp", "int32")
  T.raises(function() return skd.zeros(2):get(3) end, "get", "out of range")
  T.raises(function() return skd.zeros(2, 2):get(1) end, "needs 2 indices")
  T.raises(function() return skd.cat({skd.zeros(2, 3), skd.zeros(3, 3)}, 2) end, "cat", "2x3", "3x3")
  T.raises(function() return skd.zeros(2, 3):backward() end, "does not require grad")
  T.raises(function() return skd.ones(3):requires_grad():exp():backward() end, "non-scalar")
  T.raises(function() return skd.tensor({{1, 2}, {3}}) end, "ragged")
  T.raises(function() return skd.zeros(2, "x") end, "zeros")
  T.raises(function() local x = skd.ones(2):requires_grad(); x:fill_(0) end, "fill_", "no_grad")
end)

T.test("same seed, same numbers", function()
  skd.manual_seed(42); local a = skd.randn(100)
  skd.manual_seed(42); local b = skd.randn(100)
  T.eq(T.maxdiff(a, b), 0)
end)

T.done()
