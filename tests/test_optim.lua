-- Optimisers against updates worked by hand (torch.optim semantics) and the poly schedule.
local T = require "harness"

T.test("sgd without momentum: p -= lr (g + wd p)", function()
  local p = skd.tensor({1, -2}):requires_grad()
  p.grad = skd.tensor({0.5, 0.25})
  local opt = skd.optim.sgd({p}, {lr = 0.1, weight_decay = 0.01})
  opt:step()
  T.near(p, {1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.25 - 0.02)}, 1e-7)
end)

T.test("sgd momentum and nesterov by hand over two steps", function()
  for _, nesterov in ipairs({false, true}) do
    local p = skd.tensor({1.0}):requires_grad()
    local opt = skd.optim.sgd({p}, {lr = 0.1, momentum = 0.9, nesterov = nesterov})
    p.grad = skd.tensor({1.0}); opt:step()       -- buf = 1
    local want = 1 - 0.1 * (nesterov and (1 + 0.9 * 1) or 1)
    T.near(p, {want}, 1e-7)
    p.grad = skd.tensor({2.0}); opt:step()       -- buf = 0.9 + 2 = 2.9
    want = want - 0.1 * (nesterov and (2 + 0.9 * 2.9) or 2.9)
    T.near(p, {want}, 1e-6)
  end
end)

T.test("adam by hand over two steps", function()
  local p = skd.tensor({1.0}):requires_grad()
  local opt = skd.optim.adam({p}, {lr = 0.01, betas = {0.9, 0.999}, eps = 1e-8})
  local m, v, x = 0, 0, 1.0
  for step, g in ipairs({0.5, -1.5}) do
    p.grad = skd.tensor({g}); opt:step()
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    local mh, vh = m / (1 - 0.9 ^ step), v / (1 - 0.999 ^ step)
    x = x - 0.01 * mh / (math.sqrt(vh) + 1e-8)
    T.near(p, {x}, 1e-6, "step " .. step)
  end
end)

T.test("parameter groups scale the lr; poly schedule", function()
  local a = skd.tensor({1.0}):requires_grad()
  local b = skd.tensor({1.0}):requires_grad()
  local opt = skd.optim.sgd({{params = {a}}, {params = {b}, lr_mult = 10}}, {lr = 0.01})
  opt:set_lr(skd.optim.poly(0.01, 50, 100))
  local lr = 0.01 * 0.5 ^ 0.9
  T.near(opt.param_groups[1].lr, lr, 1e-12)
  a.grad = skd.tensor({1.0}); b.grad = skd.tensor({1.0})
  opt:step()
  T.near(a, {1 - lr}, 1e-7)
  T.near(b, {1 - 10 * lr}, 1e-6)
  T.eq(skd.optim.poly(0.01, 100, 100), 0.0)
end)

T.test("a quadratic is minimised", function()
  local x = skd.tensor({3, -4}):requires_grad()
  local opt = skd.optim.sgd({x}, {lr = 0.1, momentum = 0.9})
  for _ = 1, 200 do
    opt:zero_grad()
    ;(x * x):sum():backward()
    opt:step()
  end
  T.near(x, {0, 0}, 1e-3)
end)

T.test("state_dict round trip resumes identically", function()
  local function run(steps, resume_from, first)
    local p = skd.tensor({1, 2, 3}):requires_grad()
    local opt = skd.optim.sgd({p}, {lr = 0.1, momentum = 0.9})
    if resume_from then
      p:requires_grad(false); p:copy_(resume_from.p); p:requires_grad(true)
      opt:load_state_dict(resume_from.opt)
    end
    for i = first or 1, (first or 1) + steps - 1 do
      p.grad = skd.tensor({i, -i, 0.5 * i})
      opt:step()
    end
    return p, opt
  end
  local full = run(6)
  local half, opt = run(3)
  local st = opt:state_dict()
  local resumed = run(3, {p = half:detach():clone(), opt = st}, 4)
  T.near(resumed, full, 0)
end)

T.test("an optimiser built before Module:flatten keeps updating the model", function()
  local net = skd.nn.Sequential{skd.nn.Conv2d(2, 3, 1), skd.nn.ReLU(), skd.nn.Conv2d(3, 1, 1)}
  local opt = skd.optim.sgd(net:parameters(), {lr = 0.1})
  net:flatten()
  local before = net:flat_parameters():clone()
  opt:zero_grad()
  net(skd.randn(2, 2, 4, 4)):sum():backward()
  opt:step()
  T.ok(T.maxdiff(net:flat_parameters(), before) > 0, "the flat parameters moved")
  for _, p in ipairs(net:parameters()) do T.ok(p.grad ~= nil) end
end)

T.test("bad arguments are clear errors", function()
  T.raises(function() skd.optim.sgd(42) end, "sgd", "module")
  T.raises(function() skd.optim.sgd({skd.ones(2), "x"}) end, "parameter 2")
  T.raises(function() skd.optim.sgd({skd.ones(1)}, {nesterov = true}) end, "nesterov")
  T.raises(function() local p = skd.ones(2):requires_grad(); p.grad = skd.ones(3) end, "grad", "shape")
end)

T.done()
