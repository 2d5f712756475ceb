-- softmax and log_softmax over any dimension: values by hand, stability, both kernel paths
-- (last dim rows, inner-axis column blocks) against each other, gradients by finite
-- differences, errors by message.
local T = require "harness"
skd.manual_seed(4)

T.test("softmax and log_softmax of {1,2,3} by hand", function()
  local x = skd.tensor({1, 2, 3})
  local z = 1 + math.exp(-1) + math.exp(-2)
  T.near(skd.softmax(x, 1), {math.exp(-2) / z, math.exp(-1) / z, 1 / z}, 1e-7)
  T.near(skd.log_softmax(x, 1), {-2 - math.log(z), -1 - math.log(z), -math.log(z)}, 1e-6)
  -- negative dims count from the end
  T.near(skd.softmax(x, -1), skd.softmax(x, 1), 0)
end)

T.test("softmax over dim 1 and dim 2 of a matrix by hand", function()
  local x = skd.tensor({{1, 2}, {3, 4}})
  local a, b = 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2)) -- columns differ by 2
  T.near(skd.softmax(x, 1), {{a, a}, {b, b}}, 1e-7)
  local c, d = 1 / (1 + math.exp(1)), 1 / (1 + math.exp(-1)) -- rows differ by 1
  T.near(skd.softmax(x, 2), {{c, d}, {c, d}}, 1e-7)
end)

T.test("numerically stable: huge and very negative logits", function()
  local s = skd.softmax(skd.tensor({1000, 1001, 1002}), 1)
  T.near(s, skd.softmax(skd.tensor({1, 2, 3}), 1), 1e-6)
  T.near(skd.log_softmax(skd.tensor({-1000, 0}), 1), {-1000, 0}, 1e-3)
  local l = skd.log_softmax(skd.tensor({{-500}, {500}}), 1)
  T.near(l, {{-1000}, {0}}, 1e-3)
end)

T.test("sums to one along the chosen dim; exp(log_softmax) = softmax", function()
  local x = skd.randn(2, 5, 3, 4) * 3
  for d = 1, 4 do
    local s = skd.softmax(x, d)
    T.near(s:sum(d), skd.ones(table.unpack(s:sum(d):size())), 1e-5, "dim " .. d)
    T.near(skd.log_softmax(x, d):exp(), s, 1e-6, "dim " .. d)
  end
end)

T.test("class-axis kernel (column blocks) equals the last-axis kernel (rows)", function()
  -- inner = 17·19 = 323 > one 256-column block, so blocks and their tails are exercised
  local x = skd.randn(2, 7, 17, 19)
  local g = skd.randn(2, 7, 17, 19)
  for _, f in ipairs({skd.softmax, skd.log_softmax}) do
    local a = x:clone():requires_grad()
    local ya = f(a, 2)
    ;(ya * g):sum():backward()
    local b = x:transpose(2, 4):contiguous():requires_grad()
    local yb = f(b, 4)
    ;(yb * g:transpose(2, 4)):sum():backward()
    T.near(ya, yb:transpose(2, 4), 1e-6)
    T.near(a.grad, b.grad:transpose(2, 4), 1e-6)
  end
end)

T.test("gradcheck softmax / log_softmax over dims 1, 2 and 3", function()
  local x = skd.randn(3, 4, 5):requires_grad()
  for d = 1, 3 do
    T.gradcheck(function(t) return skd.softmax(t, d) end, {x})
    T.gradcheck(function(t) return skd.log_softmax(t, d) end, {x})
  end
  -- a non-contiguous input
  local y = skd.randn(4, 3):requires_grad()
  T.gradcheck(function(t) return skd.softmax(t:transpose(1, 2), 2) end, {y})
end)

T.test("softmax repeats bit for bit across thread counts", function()
  local x = skd.randn(4, 19, 64, 64)
  T.same_at_threads(function() return skd.softmax(x, 2), skd.log_softmax(x, 4) end)
end)

T.test("bad softmax calls raise errors naming the op and the problem", function()
  local x = skd.randn(2, 3)
  local bad = {
    {function() skd.softmax(x, 3) end, "dim"},
    {function() skd.log_softmax(x, 0) end, "dim"},
    {function() skd.softmax(x:int(), 1) end, "softmax", "float32", "int32"},
    {function() skd.log_softmax(x:int(), 1) end, "log_softmax", "float32"},
    {function() skd.softmax(nil, 1) end, "tensor expected"},
  }
  T.raises_each(bad)
end)

T.done()
