-- skd.distill — the distillation iteration of method.md §0, on skd.train's run loop.
--
--   skd.distill{teacher = t, student = s, critic = d, loader = l, iterations = 2000,
--               weights = {ce = 1, aux = 0.4, pi = 10, pa = 10, ho = 0.1}, lr = 0.01}
--
-- One iteration: the frozen teacher runs in no-grad mode; the student takes one SGD step on
--   L_S = w.ce·CE(z_s) + w.aux·CE(z_aux) + w.pi·L_pi + w.pa·L_pa + w.ho·L_ho(S, D)
-- and then, if there is a critic and w.ho > 0, the critic takes one step on
--   L_D = w.ho·[mean D(S) − mean D(T) + λ_gp·GP]          (method.md §3)
-- A weight of 0 switches its term off (it is then neither computed nor logged).
-- class_weights = C-vector (skd.data.class_weights): the two CE terms weigh each pixel by its class.
local train = require "skd.train"
local distill = {}

distill.default_weights = {ce = 1, aux = 0.4, pi = 10, pa = 10, ho = 0.1}
local TERM_ORDER = {"ce", "aux", "pi", "pa", "ho"}

local function merged(defaults, given)
  local t = {}
  for k, v in pairs(defaults) do t[k] = v end
  for k, v in pairs(given or {}) do t[k] = v end
  return t
end

function distill.format_weights(w)
  local parts = {}
  for _, k in ipairs(TERM_ORDER) do parts[#parts + 1] = string.format("%s=%g", k, w[k] or 0) end
  return table.concat(parts, " ")
end

-- The next batch from a loader, starting a new epoch when one ends.
local function batch_source(loader)
  if type(loader) == "function" then return loader end
  if type(loader) == "table" and type(loader.next) == "function" then
    return function() return loader:next() end
  end
  error("distill: loader must be a skd.data.loader or a function returning batches", 3)
end

local function check_cfg(cfg)
  for _, k in ipairs({"teacher", "student", "loader"}) do
    if cfg[k] == nil then error("distill: '" .. k .. "' is required", 3) end
  end
  if type(cfg.iterations) ~= "number" or cfg.iterations < 1 then
    error("distill: iterations must be a positive number", 3)
  end
  for k, v in pairs(cfg.weights or {}) do
    if distill.default_weights[k] == nil then
      error("distill: unknown loss weight '" .. k .. "' (known: ce, aux, pi, pa, ho)", 3)
    end
    if type(v) ~= "number" or v < 0 then error("distill: weight '" .. k .. "' must be a number >= 0", 3) end
  end
end

function distill.run(cfg)
  check_cfg(cfg)
  local L = skd.losses
  local W = merged(distill.default_weights, cfg.weights)
  local teacher, student, critic = cfg.teacher, cfg.student, cfg.critic
  local use_ho = critic ~= nil and W.ho > 0
  local condition = cfg.condition or (critic and critic.condition) or "image"
  local next_batch = batch_source(cfg.loader)
  local base_lr = cfg.lr or 0.01
  local opt = cfg.optimizer or skd.optim.sgd(student, {lr = base_lr, momentum = cfg.momentum or 0.9,
                                                       weight_decay = cfg.weight_decay or 5e-4})
  local copt, critic_lr
  if use_ho then
    local co = cfg.critic_optim or {}
    critic_lr = co.lr or (co.adam and 1e-4 or 4e-4)
    copt = co.adam and skd.optim.adam(critic, {lr = critic_lr, betas = {0, 0.9}})
      or skd.optim.sgd(critic, {lr = critic_lr, momentum = 0.9, weight_decay = 5e-4})
  end
  if not cfg.quiet then
    io.stderr:write(string.format("%s: weights %s%s\n", cfg.name or "distill", distill.format_weights(W),
      critic and not use_ho and " (critic given but ho = 0: no holistic term)" or ""))
  end
  if teacher.freeze and not teacher.frozen then teacher:freeze() end
  student:train()
  if critic then critic:train() end
  local every = cfg.every or 50
  local need_teacher = W.pi > 0 or W.pa > 0 or use_ho or cfg.on_step ~= nil

  local function step(it, lr)
    local b = next_batch()
    local x, y = b.image, b.label
    -- the baseline (no distillation term) skips the teacher altogether
    local tout = need_teacher and skd.no_grad(function() return teacher(x) end) or {}
    opt:set_lr(lr)
    opt:zero_grad()
    local out = student(x)
    local terms, total = {}, nil
    local function add(name, t)
      local w = W[name]
      terms[name] = t:item()
      total = total and total + t * w or t * w
    end
    local ce_opts = {ignore_index = 255, weight = cfg.class_weights}
    add("ce", L.cross_entropy(out.logits, y, ce_opts))
    if W.aux > 0 and out.aux then add("aux", L.cross_entropy(out.aux, y, ce_opts)) end
    if W.pi > 0 then add("pi", L.pixel_kl(out.logits, tout.logits, cfg.pixel)) end
    if W.pa > 0 then
      -- the pair-wise slot may hold another feature loss (MIMIC, AT: experiments/pairwise.lua)
      add("pa", cfg.pairwise_fn and cfg.pairwise_fn(out.feat, tout.feat) or L.pairwise(out.feat, tout.feat, cfg.pairwise))
    end
    local s_in, t_in
    if use_ho then
      s_in = L.critic_input(out.logits, x, condition)
      t_in = L.critic_input(tout.logits, x, condition)
      add("ho", L.holistic_student(critic, s_in))
    end
    total:backward()
    opt:step()
    terms.total = total:item()
    if use_ho then
      copt:set_lr(lr / base_lr * critic_lr) -- the critic follows the student's poly decay
      copt:zero_grad()
      local ld, parts = L.holistic_critic(critic, s_in:detach(), t_in, merged({lambda_ho = W.ho}, cfg.holistic))
      ld:backward()
      copt:step()
      terms.d = ld:item()
      for k, v in pairs(parts or {}) do
        terms[k:sub(1, 2) == "d_" and k or "d_" .. k] = type(v) == "number" and v or v:item()
      end
    end
    if cfg.on_step and (it % every == 0 or it == 1) then
      cfg.on_step{it = it, image = x, label = y, teacher = tout.logits, student = out.logits,
                  features = {teacher = tout.feat, student = out.feat}, losses = terms}
    end
    return terms
  end

  local parts = {student = student, optimizer = opt}
  if use_ho then parts.critic, parts.critic_optimizer = critic, copt end
  local iterations = cfg.iterations
  return train.run{
    name = cfg.name or "distill", iterations = iterations, step = step, quiet = cfg.quiet,
    images_per_step = cfg.batch, report_every = cfg.report_every,
    lr = function(it) return skd.optim.poly(base_lr, it - 1, iterations) end,
    log = cfg.log, resume = cfg.resume,
    checkpoint = cfg.checkpoint and {path = cfg.checkpoint.path, every = cfg.checkpoint.every,
                                     parts = parts, meta = cfg.checkpoint.meta,
                                     state = cfg.checkpoint.state},
  }
end

return setmetatable(distill, {__call = function(_, cfg) return distill.run(cfg) end})
