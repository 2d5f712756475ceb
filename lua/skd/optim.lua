-- skd.optim — SGD and Adam with parameter groups, and the poly learning-rate schedule.
--
--   local opt = skd.optim.sgd(net, {lr=0.01, momentum=0.9, weight_decay=5e-4})
--   local opt = skd.optim.sgd({{params=backbone, lr_mult=1}, {params=head, lr_mult=10}}, {lr=0.01})
--   opt:zero_grad(); loss:backward(); opt:step()
--   opt:set_lr(skd.optim.poly(0.01, it, max_it))      -- every group gets base lr × lr_mult
--
-- `params` may be a module (anything with :parameters()), a list of tensors, or a list of
-- groups {params=module-or-list, lr_mult=, weight_decay=, ...} whose fields override the
-- defaults. Updates run in fused C kernels (core/optim.c), one call per parameter tensor —
-- one call in all for a model that keeps its parameters in one flat buffer.
local optim = {}

local function tensor_list(p, what)
  if skd.is_tensor(p) then return {p} end
  if type(p) == "table" and type(p.parameters) == "function" then
    if type(p.flat_parameters) == "function" then
      local flat = p:flat_parameters()
      if flat then return {flat} end
    end
    return p:parameters()
  end
  if type(p) ~= "table" then
    error(what .. ": expects a module, a list of tensors or a list of groups, got " .. type(p), 3)
  end
  for i, t in ipairs(p) do
    if not skd.is_tensor(t) then
      error(string.format("%s: parameter %d is a %s, not a tensor", what, i, type(t)), 3)
    end
  end
  return p
end

local function make_groups(params, defaults, what)
  local groups = {}
  local is_group_list = type(params) == "table" and not skd.is_tensor(params)
    and params.parameters == nil and type(params[1]) == "table"
    and not skd.is_tensor(params[1]) and params[1].params ~= nil
  if is_group_list then
    for i, g in ipairs(params) do
      local group = {}
      for k, v in pairs(defaults) do group[k] = v end
      for k, v in pairs(g) do if k ~= "params" then group[k] = v end end
      group.params = tensor_list(g.params, what)
      group.lr_mult = group.lr_mult or 1
      groups[i] = group
    end
  else
    local group = {}
    for k, v in pairs(defaults) do group[k] = v end
    group.params = tensor_list(params, what)
    group.lr_mult = 1
    groups[1] = group
  end
  for gi, g in ipairs(groups) do
    if type(g.lr) ~= "number" or g.lr < 0 then
      error(string.format("%s: group %d needs a learning rate lr >= 0", what, gi), 3)
    end
    g.base_lr = g.lr
  end
  return groups
end

local Optimizer = {}
Optimizer.__index = Optimizer

-- Calls update(p, grad, group) for every parameter that received a gradient, then counts
-- the step: the loop both optimisers share; each supplies only its update.
function Optimizer:each_update(update)
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      local grad = p.grad
      if grad then update(p, grad, g) end
    end
  end
  self.steps = self.steps + 1
end

function Optimizer:zero_grad()
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      local grad = p.grad
      if grad then grad:zero_() end
    end
  end
end

-- Sets every group's lr to lr × its lr_mult (the poly schedule calls this each iteration).
function Optimizer:set_lr(lr)
  for _, g in ipairs(self.param_groups) do g.lr = lr * g.lr_mult end
end

function Optimizer:get_lr()
  return self.param_groups[1].lr / self.param_groups[1].lr_mult
end

-- Tensors and plain values for a checkpoint: {tensors = {name = tensor}, meta = {key = string}}.
function Optimizer:state_dict()
  local tensors, meta = {}, {kind = self.kind, steps = tostring(self.steps)}
  for gi, g in ipairs(self.param_groups) do
    meta["group" .. gi .. ".lr"] = string.format("%.17g", g.lr)
    for pi, p in ipairs(g.params) do
      local st = self.state[p]
      if st then
        for k, v in pairs(st) do
          if skd.is_tensor(v) then tensors[string.format("group%d.param%d.%s", gi, pi, k)] = v
          else meta[string.format("group%d.param%d.%s", gi, pi, k)] = tostring(v) end
        end
      end
    end
  end
  return {tensors = tensors, meta = meta}
end

function Optimizer:load_state_dict(sd)
  if type(sd) ~= "table" or type(sd.tensors) ~= "table" or type(sd.meta) ~= "table" then
    error("optim: load_state_dict expects the table state_dict() returned", 2)
  end
  if sd.meta.kind and sd.meta.kind ~= self.kind then
    error("optim: state is for " .. sd.meta.kind .. ", this optimizer is " .. self.kind, 2)
  end
  self.steps = tonumber(sd.meta.steps) or 0
  for gi, g in ipairs(self.param_groups) do
    g.lr = tonumber(sd.meta["group" .. gi .. ".lr"]) or g.lr
    for pi, p in ipairs(g.params) do
      local prefix = string.format("group%d.param%d.", gi, pi)
      local st = {}
      for name, t in pairs(sd.tensors) do
        if name:sub(1, #prefix) == prefix then
          local key = name:sub(#prefix + 1)
          if t:numel() ~= p:numel() then
            error(string.format("optim: state %s has %d elements, parameter has %d", name, t:numel(), p:numel()), 2)
          end
          st[key] = t:clone():reshape(p:size())
        end
      end
      for name, v in pairs(sd.meta) do
        if name:sub(1, #prefix) == prefix then st[name:sub(#prefix + 1)] = tonumber(v) or v end
      end
      self.state[p] = next(st) and st or nil
    end
  end
end

-- SGD: torch.optim.SGD semantics (momentum, weight decay, nesterov; dampening 0).
function optim.sgd(params, opts)
  opts = opts or {}
  local defaults = {lr = opts.lr or 0.01, momentum = opts.momentum or 0,
                    weight_decay = opts.weight_decay or 0, nesterov = opts.nesterov or false}
  if defaults.nesterov and defaults.momentum <= 0 then
    error("sgd: nesterov needs momentum > 0", 2)
  end
  local self = setmetatable({kind = "sgd", steps = 0, state = setmetatable({}, {__mode = "k"}),
                             param_groups = make_groups(params, defaults, "sgd")}, Optimizer)
  function self:step()
    self:each_update(function(p, grad, g)
      local st = self.state[p]
      local first = false
      if g.momentum ~= 0 and not st then
        st = {momentum_buffer = skd.zeros(p:size())}
        self.state[p] = st
        first = true
      end
      skd._sgd_step(p, grad, st and st.momentum_buffer, g.lr, g.momentum, g.weight_decay,
                    g.nesterov, first)
    end)
  end
  return self
end

-- Adam: torch.optim.Adam semantics (L2 weight decay, no amsgrad). betas = {b1, b2}.
function optim.adam(params, opts)
  opts = opts or {}
  local betas = opts.betas or {0.9, 0.999}
  local defaults = {lr = opts.lr or 1e-3, beta1 = betas[1], beta2 = betas[2],
                    eps = opts.eps or 1e-8, weight_decay = opts.weight_decay or 0}
  local self = setmetatable({kind = "adam", steps = 0, state = setmetatable({}, {__mode = "k"}),
                             param_groups = make_groups(params, defaults, "adam")}, Optimizer)
  function self:step()
    self:each_update(function(p, grad, g)
      local st = self.state[p]
      if not st then
        st = {exp_avg = skd.zeros(p:size()), exp_avg_sq = skd.zeros(p:size()), step = 0}
        self.state[p] = st
      end
      st.step = st.step + 1
      skd._adam_step(p, grad, st.exp_avg, st.exp_avg_sq, g.lr, g.beta1, g.beta2, g.eps,
                     g.weight_decay, st.step)
    end)
  end
  return self
end

-- The poly schedule of method.md §5: base_lr · (1 − it/max_it)^power, it counted from 0.
function optim.poly(base_lr, it, max_it, power)
  power = power or 0.9
  if max_it <= 0 then error("poly: max_it must be positive", 2) end
  local f = 1 - math.min(it, max_it) / max_it
  return base_lr * f ^ power
end

return optim
