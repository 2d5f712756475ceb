-- batch_norm: training (batch statistics, running-statistics update with the unbiased
-- variance) and eval (running statistics), forward and backward for x, weight and bias.
-- Values by hand, gradients by finite differences, PyTorch as a reference where installed,
-- errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(3)

local EPS = 1e-5

T.test("training: one channel by hand, and the running-statistics update", function()
  -- channel 1: {1,2,3,6}: mean 3, biased variance 14/4, unbiased 14/3
  -- channel 2: {0,0,1,1}: mean 0.5, biased variance 0.25, unbiased 1/3
  local x = skd.tensor({{1, 0}, {2, 0}, {3, 1}, {6, 1}})
  local w, b = skd.tensor({2, 1}), skd.tensor({0.5, -1})
  local rm, rv = skd.zeros(2), skd.ones(2)
  local y = skd.batch_norm(x, w, b, rm, rv, {training = true, momentum = 0.1})
  local s1, s2 = math.sqrt(3.5 + EPS), math.sqrt(0.25 + EPS)
  local want = {}
  for i, v in ipairs({1, 2, 3, 6}) do
    want[2 * i - 1] = 2 * (v - 3) / s1 + 0.5
    want[2 * i] = ({0, 0, 1, 1})[i] == 0 and -0.5 / s2 - 1 or 0.5 / s2 - 1
  end
  T.near(y, want, 1e-5)
  -- running ← 0.9·running + 0.1·batch, with the unbiased variance
  T.near(rm, {0.3, 0.05}, 1e-7)
  T.near(rv, {0.9 + 0.1 * 14 / 3, 0.9 + 0.1 / 3}, 1e-6)
  -- the buffers are written in place, not recorded on the tape
  T.eq(rm.grad_fn, nil)
  T.eq(rv.grad_fn, nil)
  -- a second step moves them again from where they are
  skd.batch_norm(x, w, b, rm, rv, {training = true, momentum = 0.5})
  T.near(rm, {0.5 * 0.3 + 0.5 * 3, 0.5 * 0.05 + 0.5 * 0.5}, 1e-6)
end)

T.test("eval: the running statistics normalise, nothing is updated", function()
  local x = skd.tensor({{1, 0}, {2, 0}, {3, 1}, {6, 1}})
  local rm, rv = skd.tensor({1, -1}), skd.tensor({4, 0.25})
  local y = skd.batch_norm(x, skd.tensor({2, 1}), skd.tensor({0, 3}), rm, rv)
  local want = {}
  for i, v in ipairs({1, 2, 3, 6}) do
    want[2 * i - 1] = 2 * (v - 1) / math.sqrt(4 + EPS)
    want[2 * i] = (({0, 0, 1, 1})[i] + 1) / math.sqrt(0.25 + EPS) + 3
  end
  T.near(y, want, 1e-5)
  T.near(rm, {1, -1}, 0)
  T.near(rv, {4, 0.25}, 0)
  -- weight and bias are optional; eval accepts one value per channel
  local z = skd.batch_norm(skd.tensor({{{{5}}, {{7}}}}), nil, nil, rm, rv)
  T.near(z, {4 / math.sqrt(4 + EPS), 8 / math.sqrt(0.25 + EPS)}, 1e-5)
end)

T.test("training gradients by hand: a constant upstream gradient gives dx = 0", function()
  -- Σ y over a channel is constant (the mean is subtracted), so d(sum)/dx = 0; dβ = M, dγ = Σ xhat = 0
  local x = skd.randn(3, 2, 2, 2):requires_grad()
  local w, b = skd.tensor({1.5, -0.5}):requires_grad(), skd.tensor({0.1, 0.2}):requires_grad()
  skd.batch_norm(x, w, b, nil, nil, {training = true}):sum():backward()
  T.near(x.grad, skd.zeros(3, 2, 2, 2), 1e-5)
  T.near(b.grad, {12, 12}, 0)
  T.near(w.grad, {0, 0}, 1e-5)
end)

T.test("gradcheck batch_norm training: x, weight, bias (2-d, 4-d inputs)", function()
  for _, size in ipairs({{6, 3}, {3, 2, 3, 4}}) do
    local c = size[2]
    local x = skd.randn(table.unpack(size)):requires_grad()
    local w = (skd.rand(c) + 0.5):requires_grad()
    local b = skd.randn(c):requires_grad()
    local rm, rv = skd.zeros(c), skd.ones(c)
    T.gradcheck(function(xx, ww, bb)
      return skd.batch_norm(xx, ww, bb, rm, rv, {training = true})
    end, {x, w, b})
  end
  -- without weight and bias
  T.gradcheck(function(xx) return skd.batch_norm(xx, nil, nil, nil, nil, {training = true}) end,
              {skd.randn(4, 3, 2, 2):requires_grad()})
end)

T.test("gradcheck batch_norm eval: x, weight, bias", function()
  local c = 3
  local rm, rv = skd.randn(c), skd.rand(c) + 0.5
  T.gradcheck(function(xx, ww, bb) return skd.batch_norm(xx, ww, bb, rm, rv) end,
              {skd.randn(2, c, 3, 3):requires_grad(), skd.randn(c):requires_grad(),
               skd.randn(c):requires_grad()})
end)

T.test("batch_norm repeats bit for bit across thread counts", function()
  local x = skd.randn(4, 16, 40, 40)
  local g = skd.randn(4, 16, 40, 40)
  T.same_at_threads(function()
    local xx, w = x:clone():requires_grad(), skd.ones(16):requires_grad()
    local rm, rv = skd.zeros(16), skd.ones(16)
    local y = skd.batch_norm(xx, w, nil, rm, rv, {training = true})
    ;(y * g):sum():backward()
    return y, xx.grad, w.grad, rv
  end)
end)

-- ---------- PyTorch as the reference ----------

R.test("batch_norm training and eval match PyTorch (values, grads, running stats)", function()
  local x, w, b = skd.randn(4, 3, 5, 7) * 2 + 1, skd.rand(3) + 0.5, skd.randn(3)
  local rm, rv = skd.randn(3), skd.rand(3) + 0.5
  local g = skd.randn(4, 3, 5, 7)
  local ref = R.run([[
rm1, rv1 = rm.clone(), rv.clone()
xx, ww, bb = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
y = F.batch_norm(xx, rm1, rv1, ww, bb, training=True, momentum=0.2, eps=1e-3)
(y * g).sum().backward()
gx, gw, gb = xx.grad, ww.grad, bb.grad
xe, we, be = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
ye = F.batch_norm(xe, rm, rv, we, be, training=False, eps=1e-3)
(ye * g).sum().backward()
gxe, gwe, gbe = xe.grad, we.grad, be.grad
]], {x = x, w = w, b = b, rm = rm, rv = rv, g = g},
    {"y", "gx", "gw", "gb", "rm1", "rv1", "ye", "gxe", "gwe", "gbe"})
  local function run(training)
    local xx, ww, bb = x:clone():requires_grad(), w:clone():requires_grad(), b:clone():requires_grad()
    local m, v = rm:clone(), rv:clone()
    local y = skd.batch_norm(xx, ww, bb, m, v, {training = training, momentum = 0.2, eps = 1e-3})
    ;(y * g):sum():backward()
    return y, xx.grad, ww.grad, bb.grad, m, v
  end
  local y, gx, gw, gb, m, v = run(true)
  T.near(y, ref.y, 1e-5, "train y")
  T.near(gx, ref.gx, 1e-4, "train dx")
  T.near(gw, ref.gw, 1e-3, "train dweight")
  T.near(gb, ref.gb, 1e-3, "train dbias")
  T.near(m, ref.rm1, 1e-6, "running_mean")
  T.near(v, ref.rv1, 1e-5, "running_var")
  y, gx, gw, gb, m, v = run(false)
  T.near(y, ref.ye, 1e-5, "eval y")
  T.near(gx, ref.gxe, 1e-5, "eval dx")
  T.near(gw, ref.gwe, 1e-3, "eval dweight")
  T.near(gb, ref.gbe, 1e-3, "eval dbias")
  T.near(v, rv, 0, "eval leaves running_var")
end)

-- ---------- bad input ----------

T.test("bad batch_norm calls raise errors naming the op and the problem", function()
  local x = skd.randn(2, 3, 4, 4)
  local rm, rv = skd.zeros(3), skd.ones(3)
  local bad = {
    {function() skd.batch_norm(skd.randn(1, 3, 1, 1), nil, nil, rm, rv, {training = true}) end,
     "batch_norm", "more than 1 value per channel", "1x3x1x1"},
    {function() skd.batch_norm(skd.randn(1, 3), nil, nil, nil, nil, {training = true}) end,
     "batch_norm", "more than 1 value per channel", "1x3"},
    {function() skd.batch_norm(x, skd.ones(4), nil, rm, rv) end, "batch_norm", "weight", "3 elements", "4"},
    {function() skd.batch_norm(x, nil, skd.ones(2), rm, rv) end, "batch_norm", "bias", "3 elements"},
    {function() skd.batch_norm(x, nil, nil, skd.zeros(5), rv) end, "batch_norm", "running_mean", "2x3x4x4"},
    {function() skd.batch_norm(x, nil, nil, rm, nil, {training = true}) end, "batch_norm", "together"},
    {function() skd.batch_norm(x, nil, nil, nil, nil) end, "batch_norm", "eval", "running_mean"},
    {function() skd.batch_norm(x:int(), nil, nil, rm, rv) end, "batch_norm", "float32", "int32"},
    {function() skd.batch_norm(skd.randn(5), nil, nil, nil, nil, {training = true}) end, "batch_norm", "2 dims", "5"},
    {function() skd.batch_norm(x, skd.ones(3):int(), nil, rm, rv) end, "batch_norm", "weight", "float32"},
  }
  T.raises_each(bad)
end)

T.done()
