-- Holistic distillation (method.md §3): the critic's and the student's Wasserstein terms by
-- hand on critics whose input gradient is known in closed form, the gradient penalty's
-- parameter gradient (a finite-difference Hessian-vector product, design.md "Second order")
-- against PyTorch's true double backward in float64 and against finite differences of the
-- penalty itself, and the penalty's evaluations leaving the critic as they found it.
local T = require "harness"
local R = require "torchref"
local L = skd.losses
skd.manual_seed(21)

local function sq(x) return x * x end

-- ---------- critics known in closed form ----------

-- D(x) = Σ w·x + b per sample: ∇_x D = w, so GP = (‖w‖ − 1)² whatever x̂ is.
local function linear_critic(w, b)
  local D = {w = w, b = b}
  function D:parameters() return {self.w, self.b} end
  return setmetatable(D, {__call = function(self, x)
    return (x * self.w):reshape(x:size(1), -1):sum(2) + self.b
  end})
end

-- D(x) = Σ w·x² per sample: ∇_x D = 2 w x, so the penalty depends on x̂ (and so on ε).
local function quadratic_critic(w)
  local D = {w = w}
  function D:parameters() return {self.w} end
  return setmetatable(D, {__call = function(self, x)
    return (x * x * self.w):reshape(x:size(1), -1):sum(2)
  end})
end

local function leaf(t) return t:detach():clone():requires_grad() end

T.test("linear critic: critic loss, its parts and its gradient by hand", function()
  local w = leaf(skd.tensor({{{0.5, -1}, {2, 0.25}}}))  -- 1x2x2, ‖w‖ = sqrt(5.3125)
  local b = leaf(skd.tensor({0.3}))
  local D = linear_critic(w, b)
  local S = skd.tensor({{{1, 2}, {3, 4}}, {{0, 1}, {-1, 2}}})   -- B = 2
  local Tt = skd.tensor({{{2, 0}, {1, 1}}, {{-2, 1}, {0, 3}}})
  local nw = math.sqrt(0.25 + 1 + 4 + 0.0625)
  local function Dv(x) -- per-sample scores by hand
    local out = {}
    for s = 1, 2 do
      local v = 0.3
      for i = 1, 2 do for j = 1, 2 do v = v + x:get(s, i, j) * w:get(1, i, j) end end
      out[s] = v
    end
    return out
  end
  local ds, dt = Dv(S), Dv(Tt)
  local mean_s, mean_t = (ds[1] + ds[2]) / 2, (dt[1] + dt[2]) / 2
  local lho, lgp = 0.1, 10
  local loss, parts = L.holistic_critic(D, S, Tt, {lambda_ho = lho, lambda_gp = lgp})
  T.near(loss:item(), lho * (mean_s - mean_t + lgp * sq(nw - 1)), 1e-5)
  T.near(parts.d_student, mean_s, 1e-6)
  T.near(parts.d_teacher, mean_t, 1e-6)
  T.near(parts.wd, mean_t - mean_s, 1e-6)
  T.near(parts.gp, sq(nw - 1), 1e-5)
  T.near(parts.grad_norm, nw, 1e-5)
  loss:backward()
  -- ∇_w = λ_ho·(mean S − mean T + λ_gp·2(‖w‖ − 1)·w/‖w‖); ∇_b = λ_ho·(1 − 1) = 0
  local want = ((S:mean(1) - Tt:mean(1)) + w:detach() * (lgp * 2 * (nw - 1) / nw)) * lho
  -- (float32 rounding of the difference quotient: ~1e-5 of the gradient's scale)
  T.near(w.grad:reshape(2, 2), want, 1e-4 * want:abs():max():item())
  T.near(b.grad, {0}, 1e-6)
end)

T.test("linear critic: the student term and the hinge option by hand", function()
  local w = leaf(skd.tensor({{{1, -1}}}))
  local b = leaf(skd.tensor({0.5}))
  local D = linear_critic(w, b)
  local S = leaf(skd.tensor({{{2, 1}}, {{0, 3}}}))  -- scores 1.5, -2.5
  local Tt = skd.tensor({{{4, 0}}, {{1, 1}}})        -- scores 4.5, 0.5
  local ls = L.holistic_student(D, S)
  T.near(ls:item(), -(1.5 - 2.5) / 2, 1e-6)
  ls:backward()
  T.near(S.grad, {{{-0.5, 0.5}}, {{-0.5, 0.5}}}, 1e-6) -- −w/B per sample
  -- hinge: mean relu(1 − D(T)) + mean relu(1 + D(S)) = (0 + 0.5)/2 + (2.5 + 0)/2
  local loss, parts = L.holistic_critic(D, S, Tt, {hinge = true, lambda_ho = 2})
  T.near(loss:item(), 2 * (0.25 + 1.25), 1e-6)
  T.eq(parts.gp, nil)
  -- lambda_gp = 0: the plain Wasserstein estimate
  local l0 = L.holistic_critic(D, S, Tt, {lambda_gp = 0, lambda_ho = 1})
  T.near(l0:item(), (1.5 - 2.5) / 2 - (4.5 + 0.5) / 2, 1e-6)
end)

T.test("quadratic critic: x̂ = ε·T + (1−ε)·S with ε ~ U[0,1) per sample from the engine RNG", function()
  local w = leaf(skd.tensor({{{0.3, -0.2}, {0.5, 0.1}}}))
  local D = quadratic_critic(w)
  local S = skd.randn(3, 2, 2)
  local Tt = skd.randn(3, 2, 2)
  skd.manual_seed(99)
  local loss, parts = L.holistic_critic(D, S, Tt, {lambda_ho = 1, lambda_gp = 1})
  skd.manual_seed(99)
  local eps = skd.rand(3, 1, 1)
  local xhat = Tt * eps + S * (1 - eps)
  -- g_b = 2 w x̂_b: GP and ∇_w GP = (1/B) Σ_b 2(n_b − 1)·4 w x̂_b² / n_b
  local gp, grad = 0, skd.zeros(1, 2, 2)
  for s = 1, 3 do
    local xb = xhat:narrow(1, s, 1)
    local n = (xb * w:detach() * 2):pow(2):sum():sqrt():item()
    gp = gp + sq(n - 1) / 3
    grad = grad + xb * xb * w:detach() * (2 * (n - 1) * 4 / (n * 3))
  end
  T.near(parts.gp, gp, 1e-5 * math.max(1, gp))
  loss:backward()
  -- the Wasserstein part: mean_b S_b² − mean_b T_b²
  local want = (S * S):mean(1, true) - (Tt * Tt):mean(1, true) + grad
  local err = (w.grad - want):abs():max():item() / want:abs():max():item()
  T.ok(err < 1e-4, string.format("relative error %.3g", err))
end)

-- ---------- a small SAGAN critic ----------

-- The real discriminator, narrow: width 2 gives 2-4-8-16 channels and both attention blocks.
-- γ is set away from 0 so that attention takes part, and a few forwards converge the
-- spectral-norm vectors before they are frozen (PyTorch's reference below uses them as given).
local function small_critic(condition, C, size)
  skd.manual_seed(2)
  local D = skd.models.discriminator{num_classes = C, condition = condition, width = 2}
  skd.no_grad(function()
    D.attn1.gamma:fill_(0.5)
    D.attn2.gamma:fill_(-0.7)
    D:train()
    local cin = condition == "image" and C + 3 or C
    for _ = 1, 30 do D(skd.randn(3, cin, size, size)) end
  end)
  skd.nn.power_iteration(D, false)
  return D
end

-- The flat gradient over D's parameters (named_parameters order) after fn() builds a loss.
local function param_grad(D, fn)
  D:zero_grad()
  local out = fn()
  out:backward()
  local parts = {}
  for _, p in D:named_parameters() do parts[#parts + 1] = (p.grad or skd.zeros(p:size())):reshape(-1) end
  return skd.cat(parts, 1), out
end

local function rel_norm(a, b)
  return ((a - b):pow(2):sum():sqrt() / b:pow(2):sum():sqrt()):item()
end

-- The same critic in PyTorch, float64, with the penalty through autograd.grad(create_graph).
local PY = [[
import torch
torch.set_default_dtype(torch.float64)
g = globals()
P = {n: g[n.replace('.', '__')].double().clone().requires_grad_(True) for n in NAMES}
Bf = {n: g[n.replace('.', '__')].double() for n in BUFS}
def sn(prefix, x):
    W = P[prefix + '.weight_orig']
    sigma = Bf[prefix + '.weight_u'] @ (W.reshape(W.shape[0], -1) @ Bf[prefix + '.weight_v'])
    return F.leaky_relu(F.conv2d(x, W / sigma, P[prefix + '.bias'], stride=2, padding=1), 0.1)
def sa(prefix, x):
    B, C, H, W = x.shape
    n = H * W
    conv = lambda name: F.conv2d(x, P[prefix + '.' + name + '.weight'], P[prefix + '.' + name + '.bias'])
    q, k, v = conv('query_conv'), conv('key_conv'), conv('value_conv')
    a = torch.softmax(q.reshape(B, -1, n).transpose(1, 2) @ k.reshape(B, -1, n), dim=2)
    return P[prefix + '.gamma'] * (v.reshape(B, C, n) @ a.transpose(1, 2)).reshape(B, C, H, W) + x
def D(x):
    if 'preprocess.weight' in P:
        x = F.batch_norm(x, None, None, P['preprocess.weight'], P['preprocess.bias'], training=True, eps=1e-5)
    x = sa('attn1', sn('l3.0', sn('l2.0', sn('l1.0', x))))
    x = sa('attn2', sn('l4.0', x))
    B = x.shape[0]
    if x.shape[2] == 4 and x.shape[3] == 4:
        return F.conv2d(x, P['last.weight'], P['last.bias']).reshape(B)
    return (x.mean(dim=(2, 3)) @ P['last.weight'].sum(dim=(2, 3)).t() + P['last.bias']).reshape(B)
x = xhat.double().clone().requires_grad_(True)
gx, = torch.autograd.grad(D(x).sum(), x, create_graph=True)
gn = gx.reshape(gx.shape[0], -1).norm(dim=1)
GP = ((gn - 1) ** 2).mean()
loss = GP
if FULL:
    loss = LHO * (D(S.double()).mean() - D(T.double()).mean() + LGP * GP)
grads = torch.autograd.grad(loss, [P[n] for n in NAMES], allow_unused=True)
grad = torch.cat([(q if q is not None else torch.zeros_like(P[n])).reshape(-1) for q, n in zip(grads, NAMES)])
gp = GP.detach()
value = loss.detach()
]]

local function torch_reference(D, inputs, full)
  local names, bufs = {}, {}
  for name, t in D:named_parameters() do
    inputs[name:gsub("%.", "__")] = t
    names[#names + 1] = "'" .. name .. "'"
  end
  for name, t in D:named_buffers() do
    if t:dtype() == "float32" then
      inputs[name:gsub("%.", "__")] = t
      bufs[#bufs + 1] = "'" .. name .. "'"
    end
  end
  local head = string.format("NAMES = [%s]\nBUFS = [%s]\nFULL = %s\nLHO = %.17g\nLGP = %.17g\n",
    table.concat(names, ","), table.concat(bufs, ","), full and "True" or "False",
    full and full.lambda_ho or 0, full and full.lambda_gp or 0)
  return R.run(head .. PY, inputs, {"grad", "gp", "value"})
end

for _, c in ipairs({{"logits", 3, 32}, {"image", 3, 32}}) do
  local name = string.format("∇_θ GP = PyTorch's float64 double backward (%s condition, %dx%d)", c[1], c[3], c[3])
  R.test(name, function()
    local D = small_critic(c[1], c[2], c[3])
    local cin = c[1] == "image" and c[2] + 3 or c[2]
    local xhat = skd.randn(3, cin, c[3], c[3])
    local gp
    local g = param_grad(D, function()
      local value, surrogate = L._gradient_penalty(D, xhat)
      gp = value
      return surrogate
    end)
    local ref = torch_reference(D, {xhat = xhat})
    T.near(gp, ref.gp:item(), 1e-5 * ref.gp:item())
    local err = rel_norm(g, ref.grad)
    T.ok(err < 1e-3, string.format("relative error %.3g", err))
    print(string.format("      relative error of ∇_θ GP vs PyTorch: %.2g", err))
  end)
end

local full_name = "critic loss end to end (D(S), D(T), ε, GP) = PyTorch's float64 double backward"
R.test(full_name, function()
  local D = small_critic("logits", 3, 32)
  local S, Tt = skd.randn(3, 3, 32, 32), skd.randn(3, 3, 32, 32) * 1.5 + 0.2
  local o = {lambda_ho = 0.1, lambda_gp = 10}
  skd.manual_seed(7)
  local loss
  local g = param_grad(D, function()
    loss = L.holistic_critic(D, S, Tt, o)
    return loss
  end)
  skd.manual_seed(7)
  local eps = skd.rand(3, 1, 1, 1)
  local ref = torch_reference(D, {xhat = Tt * eps + S * (1 - eps), S = S, T = Tt}, o)
  T.near(loss:item(), ref.value:item(), 1e-5 * math.abs(ref.value:item()) + 1e-6)
  local err = rel_norm(g, ref.grad)
  T.ok(err < 1e-3, string.format("relative error %.3g", err))
end)

-- ---------- without float64: finite differences of GP itself in skd ----------

-- A piecewise-linear critic's GP is discontinuous in θ (moving a weight moves kinks across x̂
-- and g jumps), so differences of GP's value only mean something on a smooth critic: the same
-- pieces (BatchNorm, spectral norm, self-attention) with tanh for LeakyReLU.
local SmoothCritic = skd.nn.Module:extend("SmoothCritic")
function SmoothCritic:__init()
  self.bn = skd.nn.BatchNorm2d(3)
  self.c1 = skd.nn.SpectralNorm(skd.nn.Conv2d(3, 4, 4, {stride = 2, padding = 1}))
  self.attn = skd.nn.SelfAttention(4)
  self.c2 = skd.nn.Conv2d(4, 1, 3, {padding = 1})
end
function SmoothCritic:forward(x)
  local y = self.attn(self.c1(self.bn(x)):tanh())
  return (self.c2(y):tanh() * 3):mean(4):mean(3):reshape(x:size(1))
end

T.test("∇_θ GP = finite differences of GP's value (smooth critic, float32 only)", function()
  skd.manual_seed(4)
  local D = SmoothCritic()
  skd.no_grad(function()
    D.attn.gamma:fill_(0.5)
    D:train()
    for _ = 1, 30 do D(skd.randn(3, 3, 16, 16)) end
  end)
  skd.nn.power_iteration(D, false)
  local xhat = skd.randn(3, 3, 16, 16)
  param_grad(D, function() return select(2, L._gradient_penalty(D, xhat)) end)
  local checked = 0
  for _, entry in ipairs(D:named_parameters()) do
    local name, p = entry[1], entry[2]
    if name ~= "c2.bias" then -- a constant shift of the score: no gradient to check
      local flat, gflat = p:reshape(-1), p.grad:reshape(-1)
      local _, k = gflat:abs():max(1)
      k = k:item()
      local analytic, v0 = gflat:get(k), flat:get(k)
      local d = 1e-2 * math.max(math.abs(v0), 0.1)
      local function gp_at(v)
        skd.no_grad(function() flat:set(v, k) end)
        return (L._gradient_penalty(D, xhat))
      end
      local numeric = (gp_at(v0 + d) - gp_at(v0 - d)) / (2 * d)
      gp_at(v0)
      -- float32: GP's value carries ~1e-7 relative rounding, i.e. ~1e-5 on a quotient over 2d
      local tol = 1e-2 * math.abs(numeric) + 2e-5
      T.ok(math.abs(numeric - analytic) < tol,
           string.format("%s[%d]: analytic %.6g, numeric %.6g", name, k, analytic, numeric))
      if os.getenv("SKD_VERBOSE") then print(name, analytic, numeric) end
      checked = checked + 1
    end
  end
  T.ok(checked >= 10, "checked " .. checked .. " parameters")
end)

-- ---------- the critic's state ----------

T.test("the penalty's evaluations leave the critic as they found it", function()
  local D = small_critic("logits", 3, 32)
  skd.nn.power_iteration(D, true) -- as in training: u moves on every ordinary forward
  local before = {}
  for name, t in D:named_buffers() do before[name] = t:clone() end
  local grads_before = D:flat_gradients():clone()
  local value, surrogate = L._gradient_penalty(D, skd.randn(3, 3, 32, 32))
  T.ok(value > 0 and surrogate ~= nil)
  for name, t in D:named_buffers() do T.near(t, before[name], 0, name) end
  T.near(D:flat_gradients(), grads_before, 0, "parameter gradients untouched before backward")
  D:apply(function(m)
    if m.update_u ~= nil then T.eq(m.update_u, true, "update_u restored") end
    T.eq(rawget(m, "forward"), nil, "activations unpinned")
  end)
  for name, p in D:named_parameters() do T.eq(p.requires_grad_, true, name .. " requires grad") end
  -- and a critic step still moves u once per ordinary forward (D(S), D(T)), as in training
  local u0 = D:get("l1.0").weight_u:clone()
  L.holistic_critic(D, skd.randn(3, 3, 32, 32), skd.randn(3, 3, 32, 32))
  T.ok((D:get("l1.0").weight_u - u0):abs():max():item() > 0, "u moved by D(S), D(T)")
end)

T.test("the two evaluations along U batched together: the numbers of two calls (sums reordered)", function()
  for _, cond in ipairs({"image", "logits"}) do -- "logits" has a training BatchNorm: never batched
    local D = small_critic(cond, 3, 32)
    local S, Tt = skd.randn(2, D.in_channels, 32, 32), skd.randn(2, D.in_channels, 32, 32)
    local sd = D:state_dict()
    local rng = skd.rng_state()
    local function grads(batched)
      L.GP_BATCHED = batched
      D:load_state_dict(sd)
      skd.set_rng_state(rng)
      D:zero_grad()
      local loss = L.holistic_critic(D, S, Tt)
      loss:backward()
      L.GP_BATCHED = true
      return loss:item(), D:flat_gradients():clone()
    end
    local l1, g1 = grads(false)
    local l2, g2 = grads(true)
    T.eq(l2, l1, cond .. ": loss")
    -- a weight gradient summed over 2B columns at once instead of two graphs of B: float32
    -- rounding of a reordered sum, nothing more
    T.near(g2, g1, 1e-5 * g1:abs():max():item(), cond .. ": parameter gradients")
  end
end)

T.test("the student term reaches the student's input through the real critic", function()
  local D = small_critic("image", 4, 16)
  local z = skd.randn(2, 4, 16, 16):requires_grad()
  local x = L.critic_input(z, skd.randn(2, 3, 64, 64), "image")
  local l = L.holistic_student(D, x)
  l:backward()
  T.ok(z.grad ~= nil and z.grad:abs():max():item() > 0)
  T.gradcheck(function(zz) return L.holistic_student(D, L.critic_input(zz, skd.zeros(2, 3, 16, 16))) * 100 end,
              {skd.randn(2, 4, 16, 16):requires_grad()}, {max_checks = 40})
end)

T.test("holistic errors", function()
  local D = linear_critic(leaf(skd.ones(1, 2)), leaf(skd.zeros(1)))
  T.raises(function() L.holistic_critic(D, skd.randn(2, 1, 2), skd.randn(3, 1, 2)) end, "holistic_critic", "2x1x2", "3x1x2")
  T.raises(function() L.holistic_critic(D, skd.randn(2, 1, 2), skd.randn(2, 1, 2), {lamda_gp = 1}) end, "unknown option 'lamda_gp'")
end)

T.done()
