-- skd.losses — the losses of method.md §0–§3: cross-entropy, pixel-wise KL, pair-wise affinity
-- (fully connected through Gram matrices, or banded over neighbours), the MIMIC and attention
-- transfer comparison points, and the holistic Wasserstein critic with its gradient penalty.
--
--   L = skd.losses
--   L.cross_entropy(z, y, {ignore_index = 255, weight = class weights (skd.data.class_weights)})
--   L.pixel_kl(zs, zt, {T = 1, reduction = "mean"|"batchsum", mask_ignore = false, labels = y})
--   L.pairwise(fs, ft, {beta = 2 | grid = k, pool = "avg"|"max", alpha = nil, detach_norm = false})
--   L.affinity(f, opts) -> B×N×N, nh, nw        L.affinity_row(f, i | {r, c}, opts) -> B×N, nh, nw
--   L.nodes(f, opts) -> B×C×N normalised graph nodes, nh, nw
--   L.mimic(fs, ft, adapter)  L.mimic_adapter(Cs, Ct)   L.attention_transfer(fs, ft, {p = 2})
--   L.critic_input(z, image, "image"|"logits")  L.holistic_student(D, s_in)
--   L.holistic_critic(D, s_in, t_in, {lambda_ho = 0.1, lambda_gp = 10, hinge = false}) -> loss, parts
--
-- The C kernels behind the pair-wise term are core/affinity.c (skd._l2_normalize,
-- skd._pairwise_gram, skd._pairwise_local). The gradient penalty's second-order term is a
-- finite-difference Hessian-vector product (design.md "Second order"), see gradient_penalty.
--
-- Teacher tensors are always treated as constants (detached). Feature and logit maps are
-- B×C×h×w; labels B×H×W int32.
local losses = {}

local NODE_EPS = 1e-8 -- method.md §2 step 3: f / (‖f‖₂ + 1e-8)

-- ---------- option and shape checks ----------

local function check_opts(op, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(op .. ": options must be a table, got " .. type(opts), 3) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (known: %s)", op, tostring(k),
                          table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local function set(...)
  local s = {}
  for _, k in ipairs({...}) do s[k] = true end
  return s
end

local function shape_str(t)
  return table.concat(t:size(), "x")
end

local function check_map(op, what, t)
  if not skd.is_tensor(t) then
    error(string.format("%s: %s must be a tensor (B x C x h x w), got %s", op, what, type(t)), 3)
  end
  if t:dim() ~= 4 then
    error(string.format("%s: %s must be B x C x h x w, got %s", op, what, shape_str(t)), 3)
  end
end

-- The teacher's map, detached and resized (bilinear) to the student's h×w when they differ.
local function teacher_like(ft, fs)
  ft = ft:detach()
  local h, w = fs:size(3), fs:size(4)
  if ft:size(3) ~= h or ft:size(4) ~= w then
    ft = skd.no_grad(function()
      return skd.interpolate(ft, {h, w}, {mode = "bilinear", align_corners = true})
    end)
  end
  return ft
end

-- ---------- §0: cross-entropy ----------

-- Logits upsampled (bilinear, align_corners = true) to the label size when they differ, then
-- pixel-averaged cross-entropy ignoring ignore_index; with weight (C floats) each pixel counts
-- a[y] times, the mean divided by the pixels' total weight (PyTorch's weight=).
function losses.cross_entropy(z, y, opts)
  opts = check_opts("cross_entropy", opts, set("ignore_index", "weight"))
  check_map("cross_entropy", "logits", z)
  if not skd.is_tensor(y) or y:dim() ~= 3 then
    error("cross_entropy: labels must be a B x H x W int32 tensor", 2)
  end
  local H, W = y:size(2), y:size(3)
  local ce_opts = {ignore_index = opts.ignore_index or 255, weight = opts.weight}
  if z:size(3) ~= H or z:size(4) ~= W then
    -- the loss keeps only its log-softmax, so the upsampled logits are freed when this returns,
    -- not at the next garbage collection (80 MB for 8x19x256x512, beside the activations)
    local up <close> = skd.interpolate(z, {H, W}, {mode = "bilinear", align_corners = true})
    return skd.cross_entropy(up, y, ce_opts)
  end
  return skd.cross_entropy(z, y, ce_opts)
end

-- ---------- §1: pixel-wise distillation ----------

-- 1 where the label is not ignore_index, 0 where it is, as floats (B×h×w): labels are
-- integers, so min(|y − ignore|, 1) = 1 − relu(1 − |y − ignore|) is exactly that indicator.
local function valid_mask(y, ignore_index, h, w)
  local yf = y:float():unsqueeze(2)
  if y:size(2) ~= h or y:size(3) ~= w then
    yf = skd.interpolate(yf, {h, w}, {mode = "nearest"})
  end
  return 1 - skd.relu(1 - (yf:squeeze(2) - ignore_index):abs())
end

-- KL(q^t ‖ q^s) per pixel of the h×w maps, q = softmax(z/T), times T². "mean" divides the sum
-- by B·h·w (by the number of kept pixels with mask_ignore); "batchsum" by h·w only, the
-- authors' scale.
function losses.pixel_kl(zs, zt, opts)
  opts = check_opts("pixel_kl", opts, set("T", "reduction", "mask_ignore", "labels", "ignore_index"))
  check_map("pixel_kl", "student logits", zs)
  check_map("pixel_kl", "teacher logits", zt)
  if shape_str(zs) ~= shape_str(zt) then
    error(string.format("pixel_kl: student and teacher logits must have one shape, got %s and %s",
                        shape_str(zs), shape_str(zt)), 2)
  end
  local T = opts.T or 1
  if type(T) ~= "number" or T <= 0 then error("pixel_kl: T must be a number > 0", 2) end
  local reduction = opts.reduction or "mean"
  if reduction ~= "mean" and reduction ~= "batchsum" then
    error("pixel_kl: reduction must be \"mean\" or \"batchsum\", got \"" .. tostring(reduction) .. "\"", 2)
  end
  local B, h, w = zs:size(1), zs:size(3), zs:size(4)
  local ls = skd.log_softmax(T == 1 and zs or zs / T, 2)
  local lt, qt = skd.no_grad(function()
    local l = skd.log_softmax(T == 1 and zt:detach() or zt:detach() / T, 2)
    return l, l:exp()
  end)
  local kl = (qt * (lt - ls)):sum(2) -- B×h×w
  local denom = reduction == "mean" and B * h * w or h * w
  if opts.mask_ignore then
    if not skd.is_tensor(opts.labels) or opts.labels:dim() ~= 3 then
      error("pixel_kl: mask_ignore needs labels = a B x H x W int32 tensor", 2)
    end
    local m = skd.no_grad(valid_mask, opts.labels, opts.ignore_index or 255, h, w)
    kl = kl * m
    if reduction == "mean" then denom = math.max(m:sum():item(), 1) end
  end
  local loss = kl:sum() / denom
  if T ~= 1 then loss = loss * (T * T) end
  return loss
end

-- ---------- §2: pair-wise distillation ----------

local NODE_OPTS = set("beta", "grid", "pool", "detach_norm")
local PAIRWISE_OPTS = set("beta", "grid", "pool", "detach_norm", "alpha")

-- Patch size of one node on an h×w map: β×β, or with grid = k the authors' ⌊h/k⌋×⌊w/k⌋ (k×k
-- nodes when k divides the map, plus a row/column of partial patches otherwise). A patch
-- never exceeds the map, so a map smaller than β is one node.
local function patch_size(op, h, w, opts)
  local ph, pw
  if opts.grid ~= nil then
    if opts.beta ~= nil then error(op .. ": give beta or grid, not both", 4) end
    local k = opts.grid
    if math.type(k) ~= "integer" or k < 1 then error(op .. ": grid must be an integer >= 1", 4) end
    ph, pw = math.max(1, h // k), math.max(1, w // k)
  else
    local beta = opts.beta or 2
    if math.type(beta) ~= "integer" or beta < 1 then error(op .. ": beta must be an integer >= 1", 4) end
    ph, pw = beta, beta
  end
  return math.min(ph, h), math.min(pw, w)
end

-- The graph nodes of a feature map: β×β patches pooled (ceil mode: partial border patches are
-- nodes), flattened to B×C×N and L2-normalised over channels. Returns nodes, nh, nw.
local function make_nodes(op, f, opts)
  local B, C, h, w = f:size(1), f:size(2), f:size(3), f:size(4)
  local ph, pw = patch_size(op, h, w, opts)
  local pool = opts.pool or "avg"
  if pool ~= "avg" and pool ~= "max" then
    error(op .. ": pool must be \"avg\" or \"max\", got \"" .. tostring(pool) .. "\"", 3)
  end
  local p = f
  if ph > 1 or pw > 1 then
    local o = {kernel = {ph, pw}, stride = {ph, pw}, ceil_mode = true, count_include_pad = false}
    p = pool == "avg" and skd.avg_pool2d(f, o) or skd.max_pool2d(f, o)
  end
  local nh, nw = p:size(3), p:size(4)
  local nodes = skd._l2_normalize(p:reshape(B, C, nh * nw),
                                  {eps = NODE_EPS, detach_norm = opts.detach_norm or false})
  return nodes, nh, nw
end

-- skd.losses.nodes(f, {beta | grid, pool, detach_norm}) -> B×C×N normalised nodes, nh, nw
function losses.nodes(f, opts)
  opts = check_opts("nodes", opts, NODE_OPTS)
  check_map("nodes", "features", f)
  return make_nodes("nodes", f, opts)
end

-- L_pa (method.md §2): mean over the batch of (1/|P|) Σ_{(i,j)∈P} (a^s_ij − a^t_ij)².
-- alpha = nil: all N² pairs, through the Gram identity (never N×N); alpha = r: pairs within
-- r grid steps (Chebyshev distance), banded over neighbours.
function losses.pairwise(fs, ft, opts)
  opts = check_opts("pairwise", opts, PAIRWISE_OPTS)
  check_map("pairwise", "student features", fs)
  check_map("pairwise", "teacher features", ft)
  if fs:size(1) ~= ft:size(1) then
    error(string.format("pairwise: student and teacher batches differ (%s vs %s)",
                        shape_str(fs), shape_str(ft)), 2)
  end
  ft = teacher_like(ft, fs)
  local s, nh, nw = make_nodes("pairwise", fs, opts)
  local t = skd.no_grad(make_nodes, "pairwise", ft, opts)
  local alpha = opts.alpha
  if alpha == nil then return skd._pairwise_gram(s, t) end
  if math.type(alpha) ~= "integer" or alpha < 0 then
    error("pairwise: alpha must be nil (full connection) or an integer >= 0", 2)
  end
  return skd._pairwise_local(s, t, nh, nw, alpha)
end

-- The materialised affinity a_ij = f̂_iᵀ f̂_j, B×N×N: for the viewer and the tests only.
function losses.affinity(f, opts)
  opts = check_opts("affinity", opts, NODE_OPTS)
  check_map("affinity", "features", f)
  local s, nh, nw = make_nodes("affinity", f, opts)
  return skd.matmul(s:transpose(2, 3), s), nh, nw
end

-- One row of the affinity, B×N: node i (1-based, row-major over the nh×nw node grid) or
-- {r, c} (1-based grid coordinates) against every node. Returns row, nh, nw.
function losses.affinity_row(f, i, opts)
  opts = check_opts("affinity_row", opts, NODE_OPTS)
  check_map("affinity_row", "features", f)
  local s, nh, nw = make_nodes("affinity_row", f, opts)
  if type(i) == "table" then
    local r, c = i[1], i[2]
    if math.type(r) ~= "integer" or math.type(c) ~= "integer" or r < 1 or r > nh or c < 1 or c > nw then
      error(string.format("affinity_row: node {%s, %s} is outside the %dx%d node grid",
                          tostring(r), tostring(c), nh, nw), 2)
    end
    i = (r - 1) * nw + c
  end
  if math.type(i) ~= "integer" or i < 1 or i > nh * nw then
    error(string.format("affinity_row: node index %s is outside 1..%d", tostring(i), nh * nw), 2)
  end
  local si = s:narrow(3, i, 1):transpose(2, 3) -- B×1×C
  return skd.matmul(si, s):squeeze(2), nh, nw
end

-- ---------- §2: the comparison points MIMIC and AT ----------

-- MIMIC: mean squared difference between adapter(fs) and ft. adapter: a 1×1 conv weight
-- (Ct×Cs×1×1 tensor), {weight =, bias =}, or any callable module (e.g. nn.Conv2d(Cs, Ct, 1)).
function losses.mimic(fs, ft, adapter)
  check_map("mimic", "student features", fs)
  check_map("mimic", "teacher features", ft)
  ft = teacher_like(ft, fs)
  local a
  if skd.is_tensor(adapter) then
    a = skd.conv2d(fs, adapter)
  elseif type(adapter) == "table" and skd.is_tensor(adapter.weight) and getmetatable(adapter) == nil then
    a = skd.conv2d(fs, adapter.weight, adapter.bias)
  elseif adapter ~= nil then
    a = adapter(fs)
  else
    error("mimic: needs an adapter (a 1x1 conv weight Ct x Cs x 1 x 1, or a module); "
          .. "losses.mimic_adapter(Cs, Ct) makes one", 2)
  end
  if shape_str(a) ~= shape_str(ft) then
    error(string.format("mimic: the adapter gives %s, the teacher features are %s",
                        shape_str(a), shape_str(ft)), 2)
  end
  local d = a - ft
  return (d * d):mean()
end

-- A fresh adapter for mimic: nn.Conv2d(cs, ct, 1, {bias = false}) when skd.nn is there, else a
-- Ct×Cs×1×1 weight tensor (uniform ±1/√Cs, from the engine's generator) requiring grad.
function losses.mimic_adapter(cs, ct)
  local ok, nn = pcall(require, "skd.nn")
  if ok and type(nn) == "table" and nn.Conv2d then return nn.Conv2d(cs, ct, 1, {bias = false}) end
  local bound = 1 / math.sqrt(cs)
  return ((skd.rand(ct, cs, 1, 1) * 2 - 1) * bound):detach():requires_grad()
end

-- Attention map of Zagoruyko & Komodakis: mean over channels of |f|^p, flattened, L2-normalised.
local function attention_map(f, p, h, w)
  local a = (p == 2) and f * f or f:abs():pow(p)
  a = a:mean(2, true) -- B×1×h'×w'
  if a:size(3) ~= h or a:size(4) ~= w then
    a = skd.interpolate(a, {h, w}, {mode = "bilinear", align_corners = true})
  end
  return skd._l2_normalize(a:reshape(a:size(1), h * w, 1), {eps = 1e-12})
end

-- AT: mean over B·h·w of the squared difference of the normalised attention maps (the
-- teacher's map resized to the student's h×w when they differ).
function losses.attention_transfer(fs, ft, opts)
  opts = check_opts("attention_transfer", opts, set("p"))
  check_map("attention_transfer", "student features", fs)
  check_map("attention_transfer", "teacher features", ft)
  local p = opts.p or 2
  local h, w = fs:size(3), fs:size(4)
  local as = attention_map(fs, p, h, w)
  local at = skd.no_grad(attention_map, ft:detach(), p, h, w)
  local d = as - at
  return (d * d):mean()
end

-- ---------- §3: holistic distillation (conditional WGAN-GP critic) ----------

-- What the critic sees. "image" (paper): concat(softmax(z), image resized bilinear to h×w);
-- "logits" (authors' code): the raw logits, the critic's own BatchNorm comes first.
function losses.critic_input(z, image, condition)
  check_map("critic_input", "logits", z)
  condition = condition or "image"
  if condition == "logits" then return z end
  if condition ~= "image" then
    error("critic_input: condition must be \"image\" or \"logits\", got \"" .. tostring(condition) .. "\"", 2)
  end
  if not skd.is_tensor(image) then error("critic_input: condition \"image\" needs the image batch", 2) end
  if image:dim() == 3 then image = image:unsqueeze(1) end
  local h, w = z:size(3), z:size(4)
  if image:size(3) ~= h or image:size(4) ~= w then
    image = skd.interpolate(image:detach(), {h, w}, {mode = "bilinear", align_corners = true})
  end
  return skd.cat({skd.softmax(z, 2), image:detach()}, 2)
end

-- D's scores for a batch as a flat B-vector.
local function scores(D, x)
  local out = D(x)
  if type(out) == "table" and not skd.is_tensor(out) then out = out.score or out[1] end
  return out:reshape(-1)
end

-- L_ho, the student's term: −mean_b D(S_b). The gradient reaches the student through s_input.
function losses.holistic_student(D, s_input)
  return -scores(D, s_input):mean()
end

-- The critic's parameters as a list (parameters() may give a list or a name → tensor map).
local function param_list(D)
  local ps = D:parameters()
  local list = {}
  if #ps > 0 then
    for _, p in ipairs(ps) do list[#list + 1] = p end
  else
    for _, p in pairs(ps) do list[#list + 1] = p end
  end
  return list
end

-- Every module of the critic, D included (apply when the module system has it).
local function each_module(D, fn)
  if type(D.apply) == "function" then return D:apply(fn) end
  local seen = {}
  local function visit(m)
    if type(m) ~= "table" or seen[m] then return end
    seen[m] = true
    fn(m)
    for _, child in pairs(m.modules or m._modules or m.children or {}) do visit(child) end
  end
  visit(D)
end

-- The critic's state that a forward may change (BatchNorm running statistics, spectral-norm
-- vectors): its buffers, for a skd.nn module.
local function state_tensors(D)
  local out = {}
  if type(D.named_buffers) == "function" then
    for name, t in D:named_buffers() do out[name] = t end
  end
  return out
end

local function snapshot(state)
  local s = {}
  for name, t in pairs(state) do s[name] = t:clone() end
  return s
end

local function restore(state, saved)
  for name, t in pairs(state) do t:copy_(saved[name]) end
end

-- The slope pattern of a piecewise-linear activation at x: 1 where x > 0, `slope` elsewhere
-- (read off the activation's own backward, so it is exactly what double backward would use).
local function slope_pattern(x, slope)
  local prev = skd.grad_enabled()
  skd.grad_enabled(true)
  local xx = x:detach():clone():requires_grad()
  local ok, err = pcall(function() xx:leaky_relu(slope):sum():backward() end)
  skd.grad_enabled(prev)
  if not ok then error(err, 0) end
  return xx.grad
end

-- Pins the critic's piecewise-linear activations (ReLU, LeakyReLU modules): while pinned, the
-- first evaluation records each one's slope pattern and later ones (after :replay()) apply
-- those patterns, x ↦ x·m, so that D(x̂ ± hU) is the critic linearised at x̂'s activation
-- pattern. That is what true double backward differentiates (an activation's second
-- derivative is 0 almost everywhere); without it the difference quotient jumps by O(1/h)
-- whenever the perturbation flips a unit's sign, which on a real critic happens for any h
-- large enough to beat float32 rounding. Activations used as modules are pinned; one called
-- as a function inside a custom forward is not (write it as nn.LeakyReLU).
local function pin_activations(D)
  local pins = {}
  each_module(D, function(m)
    local kind = type(m.type) == "function" and m:type() or nil
    if kind ~= "ReLU" and kind ~= "LeakyReLU" then return end
    local pin = {m = m, slopes = {}, twice = {}, k = 0, replay = false}
    local slope = kind == "ReLU" and 0 or m.negative_slope
    local forward = m.forward
    rawset(m, "forward", function(self, x)
      pin.k = pin.k + 1
      if pin.replay then
        local s = pin.slopes[pin.k]
        if not s then error("holistic_critic: the critic's activations changed between evaluations", 0) end
        if x:size(1) == 2 * s:size(1) then -- both evaluations in one batch (penalty_parts)
          pin.twice[pin.k] = pin.twice[pin.k] or skd.cat({s, s}, 1)
          s = pin.twice[pin.k]
        end
        return x * s
      end
      pin.slopes[pin.k] = slope_pattern(x, slope)
      return forward(self, x)
    end)
    pins[#pins + 1] = pin
  end)
  return {
    replay = function() for _, p in ipairs(pins) do p.replay, p.k = true, 0 end end,
    release = function() for _, p in ipairs(pins) do rawset(p.m, "forward", nil) end end,
  }
end

-- Whether a layer of the critic mixes the samples of a batch (BatchNorm in training mode,
-- as the "logits" condition's): then a batch of two evaluations is not two evaluations.
local function batch_coupled(D)
  local coupled = false
  each_module(D, function(m)
    local kind = type(m.type) == "function" and m:type() or nil
    if kind ~= nil and kind:find("BatchNorm", 1, true) and m.training ~= false then coupled = true end
  end)
  return coupled
end

-- The step of the central difference along the unit direction U, relative to the size of
-- the point: h = GP_STEP·‖X̂‖. With the activations pinned the critic is smooth along U
-- (BatchNorm, softmax), so the O(h²) truncation is small and a large step keeps the
-- difference of two float32 parameter gradients well above their rounding. Measured against
-- PyTorch's float64 double backward on SAGAN critics (widths 2 and 16, 32² and 64² inputs,
-- both conditions), the relative error of ∇_θ GP is the truncation ≈ 0.5·GP_STEP² above
-- 3e-3 and float32 rounding growing as 1/GP_STEP below it: 5e-4 at 3e-2, 5e-5 at 1e-2,
-- 2e-6..7e-6 at 3e-3, 1e-5..2e-5 at 1e-3, 1e-4 at 1e-4. tests/test_holistic.lua keeps it
-- below 1e-3.
losses.GP_STEP = 3e-3

-- The two evaluations along U run as one batch of 2B when no critic layer couples samples;
-- false evaluates them one after the other (twice the calls; the same values, the weight
-- gradients up to the order of their float32 sums).
losses.GP_BATCHED = true

-- The gradient penalty's value and a surrogate whose parameter gradient is ∇_θ GP.
--   g_b = ∇_x D(x̂_b)                (one backward with respect to the input only)
--   GP  = mean_b (‖g_b‖ − 1)²
--   ∇_θ GP = Σ_b c_b ∇_θ (v_bᵀ g_b),  v_b = g_b/‖g_b‖,  c_b = 2(‖g_b‖ − 1)/B
-- and Σ_b c_b v_bᵀ g_b is the directional derivative of F(X) = Σ_b D(X)_b along
-- V = (c_b v_b)_b, so with U = V/‖V‖:
--   ∇_θ GP ≈ ‖V‖ · ∇_θ [F(X̂ + hU) − F(X̂ − hU)] / 2h
-- (design.md "Second order": a central finite-difference Hessian-vector product). Perturbing
-- the whole batch at once along V keeps a batch-coupled critic (BatchNorm in training mode,
-- the "logits" condition) exact. The three evaluations of D at X̂, X̂ ± hU must be one
-- function: spectral-norm power iteration is frozen (update_u = false), the activations are
-- pinned (above), and the critic's state is restored before each evaluation, so they also
-- leave no trace on BatchNorm's running statistics.
local function penalty_parts(D, xhat, params, state, saved, was, pins)
  -- 1. g = ∇_x F at X̂, the parameters left out of this backward
  for _, p in ipairs(params) do p:requires_grad(false) end
  local x = xhat:clone():requires_grad()
  scores(D, x):sum():backward()
  for k, p in ipairs(params) do p:requires_grad(was[k]) end
  local g = x.grad
  if g == nil then error("holistic_critic: the critic's score does not depend on its input", 0) end
  local B = g:size(1)
  local gn = (g * g):reshape(B, -1):sum(2):sqrt()       -- ‖g_b‖
  local gp = ((gn - 1) * (gn - 1)):mean():item()
  local coef = {}                                       -- c_b / ‖g_b‖ (0 where g_b = 0)
  for b = 1, B do
    local n = gn:get(b)
    coef[b] = n > 0 and 2 * (n - 1) / (B * n) or 0
  end
  local cshape = {B}
  for _ = 2, g:dim() do cshape[#cshape + 1] = 1 end
  local V = g * skd.tensor(coef):reshape(cshape)
  local vnorm = (V * V):sum():sqrt():item()
  local mean_gn = gn:mean():item()
  if vnorm == 0 then return gp, nil, mean_gn end
  local U = V / vnorm
  local h = losses.GP_STEP * (xhat * xhat):sum():sqrt():item()
  if h == 0 then h = losses.GP_STEP end
  -- 2. the two evaluations along U, each from the state the first one started in: as one
  -- batch of 2B where no layer couples the samples (half the critic's calls), else apart
  restore(state, saved)
  pins.replay()
  local fp, fm
  if losses.GP_BATCHED and not batch_coupled(D) then
    local both = scores(D, skd.cat({xhat + U * h, xhat - U * h}, 1))
    fp, fm = both:narrow(1, 1, B):sum(), both:narrow(1, B + 1, B):sum()
  else
    fp = scores(D, xhat + U * h):sum()
    restore(state, saved)
    pins.replay()
    fm = scores(D, xhat - U * h):sum()
  end
  return gp, (fp - fm) * (vnorm / (2 * h)), mean_gn
end

-- Returns GP's value, the surrogate (a scalar tensor on D's parameters, nil when ∇_θ GP = 0)
-- and mean_b ‖g_b‖. xhat is a constant (no grad) batch of critic inputs.
local function gradient_penalty(D, xhat)
  local params, state = param_list(D), state_tensors(D)
  local saved = snapshot(state)
  local frozen, was = {}, {}
  each_module(D, function(m)
    if m.update_u ~= nil then frozen[#frozen + 1] = {m, m.update_u}; m.update_u = false end
  end)
  for k, p in ipairs(params) do was[k] = p.requires_grad_ end
  local pins = pin_activations(D)
  local res = table.pack(pcall(penalty_parts, D, xhat, params, state, saved, was, pins))
  pins.release()
  restore(state, saved)
  for _, f in ipairs(frozen) do f[1].update_u = f[2] end
  for k, p in ipairs(params) do
    if p.requires_grad_ ~= was[k] then p:requires_grad(was[k]) end
  end
  if not res[1] then error(res[2], 0) end
  return res[2], res[3], res[4]
end
losses._gradient_penalty = gradient_penalty

-- L_D (method.md §3): the critic's loss. Its backward gives D's parameters the gradient of
--   λ_ho·[mean D(S) − mean D(T) + λ_gp·GP],  x̂ = ε·T + (1−ε)·S, ε ~ U[0,1) per sample,
-- and its value is that quantity (the surrogate enters as surr − surr:detach(), worth 0).
-- hinge = true (SAGAN): λ_ho·[mean relu(1 − D(T)) + mean relu(1 + D(S))], no penalty.
-- Returns loss, parts = {d_student, d_teacher, wd = mean D(T) − mean D(S), gp, grad_norm}.
function losses.holistic_critic(D, s_input, t_input, opts)
  opts = check_opts("holistic_critic", opts, set("lambda_ho", "lambda_gp", "hinge"))
  local lambda_ho, lambda_gp = opts.lambda_ho or 0.1, opts.lambda_gp or 10
  if not skd.is_tensor(s_input) or not skd.is_tensor(t_input) then
    error("holistic_critic: expects the student's and the teacher's critic inputs (tensors)", 2)
  end
  if shape_str(s_input) ~= shape_str(t_input) then
    error(string.format("holistic_critic: student and teacher inputs differ: %s vs %s",
                        shape_str(s_input), shape_str(t_input)), 2)
  end
  local S, T = s_input:detach(), t_input:detach()
  local ds, dt = scores(D, S), scores(D, T)
  local parts = {d_student = ds:mean():item(), d_teacher = dt:mean():item()}
  parts.wd = parts.d_teacher - parts.d_student
  if opts.hinge then
    local l = skd.relu(1 - dt):mean() + skd.relu(1 + ds):mean()
    return l * lambda_ho, parts
  end
  local loss = ds:mean() - dt:mean()
  if lambda_gp ~= 0 then
    local B = S:size(1)
    local shape = {B}
    for _ = 2, S:dim() do shape[#shape + 1] = 1 end
    local eps = skd.rand(table.unpack(shape))
    local xhat = T * eps + S * (1 - eps)
    local gp, surrogate, gn = gradient_penalty(D, xhat)
    parts.gp, parts.grad_norm = gp, gn
    local term = gp
    if surrogate then term = surrogate - surrogate:detach() + gp end
    loss = loss + term * lambda_gp
  end
  return loss * lambda_ho, parts
end

return losses
