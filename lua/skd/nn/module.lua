-- skd.nn.Module — the base of every layer and model: named parameters, buffers and children
-- in definition order, PyTorch's dotted names (layer1.0.conv1.weight), train/eval, state
-- dicts, one flat buffer for all parameters and one for their gradients (style.md,
-- practice 4), taps on any module's output, and errors that name the failing module.
--
--   local Net = nn.Module:extend("Net")
--   function Net:__init(c) self.conv = nn.Conv2d(3, c, 3, {padding = 1}) end
--   function Net:forward(x) return self.conv(x):relu() end
--   local net = Net(8); net:flatten(); local y = net(x)
--
-- Assigning a module to a field registers it as a child (as in PyTorch); parameters and
-- buffers are registered explicitly with self:param(name, t) and self:buffer(name, t).
-- Children, parameters and buffers are plain fields of the instance (net.conv.weight).
local skd = require "skd"
local Module = {}
Module.__name = "Module"
Module.__index = Module

-- ---------------------------------------------------------------- classes

-- Metamethods every class copies, since Lua looks them up raw in an instance's metatable.
local METAMETHODS = {"__call", "__tostring", "__newindex"}

-- A new class named `name` deriving from self: instances are made by calling the class.
function Module:extend(name)
  local cls = {__name = name, __module_class = true}
  cls.__index = cls
  for _, k in ipairs(METAMETHODS) do cls[k] = self[k] end
  return setmetatable(cls, {
    __index = self,
    __call = function(c, ...) return c:new(...) end,
    __tostring = function() return "skd.nn." .. name end,
  })
end

function Module:new(...)
  local m = setmetatable({}, self)
  rawset(m, "training", true)
  rawset(m, "_params", {})
  rawset(m, "_buffers", {})
  rawset(m, "_children", {})
  m:__init(...)
  return m
end

function Module:__init() end

function Module.is_module(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return mt ~= nil and rawget(mt, "__module_class") == true
end
local is_module = Module.is_module

function Module:type() return getmetatable(self).__name end

-- ---------------------------------------------------------------- registration

local function check_free(m, name, what)
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    error(string.format("%s: %s name must be a non-empty string without dots, got %s",
      m:type(), what, tostring(name)), 3)
  end
  if getmetatable(m)[name] ~= nil then
    error(string.format("%s: %s name '%s' would hide the method of the same name", m:type(), what, name), 3)
  end
  for _, list in ipairs({m._params, m._buffers, m._children}) do
    for _, n in ipairs(list) do
      if n == name then error(string.format("%s: '%s' is already registered", m:type(), name), 3) end
    end
  end
end

-- Registers t (a float tensor) as a parameter; it becomes a leaf requiring grad.
function Module:param(name, t)
  check_free(self, name, "parameter")
  if not skd.is_tensor(t) then error(self:type() .. ": parameter '" .. name .. "' must be a tensor", 2) end
  t:requires_grad(true)
  table.insert(self._params, name)
  rawset(self, name, t)
  return t
end

-- Registers t as a buffer: state saved in the state dict but not trained (running_mean).
function Module:buffer(name, t)
  check_free(self, name, "buffer")
  if not skd.is_tensor(t) then error(self:type() .. ": buffer '" .. name .. "' must be a tensor", 2) end
  table.insert(self._buffers, name)
  rawset(self, name, t)
  return t
end

-- Registers a child module under name (Sequential uses "0", "1", ... as PyTorch does).
function Module:add(name, child)
  if not is_module(child) then
    error(string.format("%s: child '%s' must be a module, got %s", self:type(), tostring(name), type(child)), 2)
  end
  check_free(self, name, "child")
  table.insert(self._children, name)
  rawset(child, "_name", name)
  rawset(self, name, child)
  return child
end

-- self.conv = nn.Conv2d(...) registers a child; any other new field is stored as given.
function Module:__newindex(k, v)
  if is_module(v) then self:add(k, v) else rawset(self, k, v) end
end

-- ---------------------------------------------------------------- traversal

-- Visits every module in pre-order with its dotted path ("" for the root).
local function walk(m, prefix, visit)
  visit(prefix, m)
  for _, name in ipairs(m._children) do
    walk(rawget(m, name), prefix == "" and name or prefix .. "." .. name, visit)
  end
end
Module._walk = walk

local function join(prefix, name) return prefix == "" and name or prefix .. "." .. name end

-- An ordered list of {name, value} pairs that is also a generic-for iterator:
--   for name, p in m:named_parameters() do ... end      for i, e in ipairs(list) do e[1], e[2]
local function pairlist(list)
  local index = {}
  for i, e in ipairs(list) do index[e[1]] = i end
  return setmetatable(list, {__call = function(l, _, ctl)
    local e = l[ctl == nil and 1 or index[ctl] + 1]
    if e then return e[1], e[2] end
  end})
end

-- Parameters with their dotted names, each tensor once (the first name wins, as PyTorch).
function Module:named_parameters()
  local out, seen = {}, {}
  walk(self, "", function(prefix, m)
    for _, name in ipairs(m._params) do
      local t = rawget(m, name)
      if not seen[t] then
        seen[t] = true
        out[#out + 1] = {join(prefix, name), t}
      end
    end
  end)
  return pairlist(out)
end

function Module:parameters()
  local out = {}
  for i, e in ipairs(self:named_parameters()) do out[i] = e[2] end
  return out
end

function Module:named_buffers()
  local out = {}
  walk(self, "", function(prefix, m)
    for _, name in ipairs(m._buffers) do out[#out + 1] = {join(prefix, name), rawget(m, name)} end
  end)
  return pairlist(out)
end

function Module:buffers()
  local out = {}
  for i, e in ipairs(self:named_buffers()) do out[i] = e[2] end
  return out
end

function Module:named_children()
  local out = {}
  for i, name in ipairs(self._children) do out[i] = {name, rawget(self, name)} end
  return pairlist(out)
end

function Module:children()
  local out = {}
  for i, name in ipairs(self._children) do out[i] = rawget(self, name) end
  return out
end

-- Every module of the tree in pre-order, the root under the name "".
function Module:named_modules()
  local out = {}
  walk(self, "", function(prefix, m) out[#out + 1] = {prefix, m} end)
  return pairlist(out)
end

function Module:modules()
  local out = {}
  walk(self, "", function(_, m) out[#out + 1] = m end)
  return out
end

function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

-- fn(m) on every module, children before their parent (as PyTorch's apply).
function Module:apply(fn)
  for _, name in ipairs(self._children) do rawget(self, name):apply(fn) end
  fn(self)
  return self
end

-- The module at a dotted path ("" is self).
function Module:get(path)
  local m = self
  for part in tostring(path):gmatch("[^.]+") do
    local c = rawget(m, part)
    local found = false
    for _, n in ipairs(m._children) do if n == part then found = true end end
    if not found or not is_module(c) then
      error(string.format("%s: no module '%s' (%s has children: %s)", self:type(), path,
        m:type(), #m._children > 0 and table.concat(m._children, ", ") or "none"), 2)
    end
    m = c
  end
  return m
end

-- ---------------------------------------------------------------- modes

-- Training mode on the whole tree (mode=false: evaluation). Entering training drops any
-- BatchNorm folding made by freeze(), which is only valid for fixed running statistics.
function Module:train(mode)
  if mode == nil then mode = true end
  walk(self, "", function(_, m)
    rawset(m, "training", mode)
    if mode then
      rawset(m, "frozen", nil)
      rawset(m, "_folded_scale", nil)
      rawset(m, "_folded_bias", nil)
      rawset(m, "_folded", nil)
      rawset(m, "_pointwise", nil) -- a 1x1 conv's packed weight (layers.lua)
    end
  end)
  return self
end

function Module:eval() return self:train(false) end

-- ---------------------------------------------------------------- flat parameters

-- Moves every parameter into one contiguous buffer (a view per parameter, in named_parameters
-- order), so that zero_grad is one fill, an optimiser one fused loop and a checkpoint one
-- write. Every module's parameters are a contiguous range of the buffer (pre-order layout),
-- which is what lets a submodule hand its own slice to an optimiser group. Values,
-- requires_grad and existing gradients are kept; references to the parameters stay valid
-- (they are rebound). The gradients get a flat buffer of their own too, made on first need
-- (flat_parameters, flat_gradients, zero_grad): a frozen teacher never has one.
function Module:flatten()
  local slot, order, total, shared = {}, {}, 0, false
  local function layout(m)
    local start = total
    for _, name in ipairs(m._params) do
      local t = rawget(m, name)
      if slot[t] then
        shared = true
      else
        slot[t] = {off = total, n = t:numel()}
        order[#order + 1] = t
        total = total + t:numel()
      end
    end
    for _, name in ipairs(m._children) do layout(rawget(m, name)) end
    rawset(m, "_flat_range", {start, total - start})
  end
  layout(self)
  -- the old storage of each parameter goes back to the system as soon as it is copied
  -- (the allocator's cache is emptied every 32 MB), so the move never holds two copies
  skd.empty_cache()
  local flat = skd.empty(math.max(total, 1))
  local links, moved = {}, 0
  skd.no_grad(function()
    for _, t in ipairs(order) do
      local s = slot[t]
      local v = flat:narrow(1, s.off + 1, s.n):reshape(t:size())
      v:copy_(t)
      v:requires_grad(t.requires_grad_)
      v.grad = t.grad
      -- each parameter's own handle is pointed at its view, so references taken earlier
      -- (an optimiser built before flattening) move with it instead of going stale
      skd._rebind(t, v)
      links[#links + 1] = {t, s}
      moved = moved + 4 * s.n
      if moved > 32 * 2 ^ 20 then skd.empty_cache(); moved = 0 end
    end
  end)
  skd.empty_cache()
  local src = {params = flat, total = total, shared = shared, links = links}
  walk(self, "", function(_, m)
    rawset(m, "_flat_src", src)
    rawset(m, "_flat_view", nil)
  end)
  return self
end

-- The flat gradient buffer of a flattened tree, made on first need: each parameter's .grad
-- becomes its place in it (a gradient it already had is copied in), so backward accumulates
-- straight into the buffer the optimiser reads.
local function flat_grads(src)
  if src.grads then return src.grads end
  local g = skd.zeros(math.max(src.total, 1))
  skd.no_grad(function()
    for _, l in ipairs(src.links) do
      local t, s = l[1], l[2]
      local gv = g:narrow(1, s.off + 1, s.n):reshape(t:size())
      if t.grad then gv:copy_(t.grad) end
      l[3] = gv
      t.grad = gv
    end
  end)
  src.grads = g
  src.params.grad = g
  return g
end

-- Drops the flat gradient buffer (Module:freeze): the parameters' .grad become nil.
function Module._drop_flat_grads(m)
  local src = rawget(m, "_flat_src")
  if not src or not src.grads then return end
  for _, l in ipairs(src.links) do
    l[1].grad = nil
    l[3] = nil
  end
  src.params.grad = nil
  src.grads = nil
  walk(m, "", function(_, x) rawset(x, "_flat_view", nil) end)
  collectgarbage() -- the views' handles hold the buffer until they are collected
end

-- The flat parameter tensor of this module (its .grad is the flat gradient): for a module
-- inside a flattened tree, the slice holding its parameters. Flattens on first use.
function Module:flat_parameters()
  local src = rawget(self, "_flat_src")
  if not src then
    self:flatten()
    src = rawget(self, "_flat_src")
  end
  local cached = rawget(self, "_flat_view")
  if cached then return cached end
  local grads = flat_grads(src)
  local r = rawget(self, "_flat_range")
  local v
  if r[1] == 0 and r[2] == src.total then
    v = src.params
  elseif src.shared or r[2] == 0 then
    return nil -- parameters shared across the tree: no single slice holds this module's
  else
    v = src.params:narrow(1, r[1] + 1, r[2])
    v.grad = grads:narrow(1, r[1] + 1, r[2])
  end
  rawset(self, "_flat_view", v)
  return v
end

function Module:flat_gradients()
  local p = self:flat_parameters()
  return p and p.grad
end

-- Zeroes every parameter's gradient: one fill when the parameters are flat. A parameter
-- whose .grad was replaced or dropped meanwhile (skd.gradcheck resets its inputs' .grad) is
-- pointed back at its place in the flat gradient, which the optimiser reads.
function Module:zero_grad()
  local src = rawget(self, "_flat_src")
  if src and not src.grads then -- no gradient buffer yet (none needed so far): none made here
    for _, l in ipairs(src.links) do
      local g = l[1].grad
      if g then g:zero_() end
    end
    return self
  end
  local flat = src and self:flat_parameters()
  if flat then
    flat.grad:zero_()
    for _, l in ipairs(src.links) do l[1].grad = l[3] end
    return self
  end
  for _, p in ipairs(self:parameters()) do
    local g = p.grad
    if g then g:zero_() end
  end
  return self
end

-- ---------------------------------------------------------------- state dicts

local function shape_str(t)
  local s = t:size()
  return #s == 0 and "scalar" or table.concat(s, "x")
end
Module._shape_str = shape_str

-- Ordered {name, tensor, kind} of everything a state dict holds: per module its parameters,
-- then its buffers, then its children (PyTorch's order).
local function state_entries(root)
  local out = {}
  walk(root, "", function(prefix, m)
    for _, name in ipairs(m._params) do out[#out + 1] = {join(prefix, name), rawget(m, name), "param"} end
    for _, name in ipairs(m._buffers) do out[#out + 1] = {join(prefix, name), rawget(m, name), "buffer"} end
  end)
  return out
end

-- name -> tensor (parameters detached, sharing storage), with PyTorch's names.
function Module:state_dict()
  local sd = {}
  for _, e in ipairs(state_entries(self)) do
    sd[e[1]] = e[3] == "param" and e[2]:detach() or e[2]
  end
  return sd
end

-- The state dict's names in order.
function Module:state_dict_keys()
  local out = {}
  for i, e in ipairs(state_entries(self)) do out[i] = e[1] end
  return out
end

-- A counter such as bn.num_batches_tracked: PyTorch stores an int64 0-d tensor, skd an int32
-- one; any one-element tensor loads.
local function is_counter(t) return t:dtype() == "int32" and t:numel() == 1 end

-- Copies sd's tensors into the module. strict (default): names and shapes must match
-- exactly, and every problem is reported in one error. strict=false: loads the tensors whose
-- name and shape match and returns the missing names, the unexpected names and the names
-- whose shapes differ (each sorted).
function Module:load_state_dict(sd, opts)
  if type(sd) ~= "table" then error("load_state_dict: expects a table name -> tensor", 2) end
  local strict = not (opts and opts.strict == false)
  local entries = state_entries(self)
  local own, missing, unexpected, mismatched, problems = {}, {}, {}, {}, {}
  local todo = {}
  for _, e in ipairs(entries) do
    local name, dst = e[1], e[2]
    own[name] = true
    local src = sd[name]
    if src == nil then
      missing[#missing + 1] = name
    elseif not skd.is_tensor(src) then
      mismatched[#mismatched + 1] = name
      problems[#problems + 1] = string.format("%s: expected a tensor, got %s", name, type(src))
    elseif is_counter(dst) then
      if src:numel() ~= 1 then
        mismatched[#mismatched + 1] = name
        problems[#problems + 1] = string.format("size mismatch for %s: checkpoint has %s, the model a counter (one element)",
          name, shape_str(src))
      else
        todo[#todo + 1] = {dst, src}
      end
    elseif shape_str(src) ~= shape_str(dst) then
      mismatched[#mismatched + 1] = name
      problems[#problems + 1] = string.format("size mismatch for %s: checkpoint has %s, the model %s",
        name, shape_str(src), shape_str(dst))
    else
      todo[#todo + 1] = {dst, src}
    end
  end
  for k in pairs(sd) do
    if not own[k] then unexpected[#unexpected + 1] = tostring(k) end
  end
  table.sort(missing)
  table.sort(unexpected)
  table.sort(mismatched)
  if strict and (#missing + #unexpected + #problems) > 0 then
    local lines = {string.format("load_state_dict: %d problem(s) loading into %s:",
      #missing + #unexpected + #problems, self:type())}
    if #missing > 0 then
      lines[#lines + 1] = string.format("  missing (%d): %s", #missing, table.concat(missing, ", "))
    end
    if #unexpected > 0 then
      lines[#lines + 1] = string.format("  unexpected (%d): %s", #unexpected, table.concat(unexpected, ", "))
    end
    for _, p in ipairs(problems) do lines[#lines + 1] = "  " .. p end
    error(table.concat(lines, "\n"), 2)
  end
  skd.no_grad(function()
    for _, c in ipairs(todo) do
      local dst, src = c[1], c[2]
      if is_counter(dst) then
        dst:fill_(src:reshape(-1):float():get(1))
      else
        dst:copy_(src:dtype() == dst:dtype() and src or src:float())
      end
    end
  end)
  -- folded copies (freeze) were made from the old values
  local refold = false
  walk(self, "", function(_, m) if rawget(m, "_folded") then refold = true end end)
  if refold and self.fold_batchnorm then self:fold_batchnorm() end
  return missing, unexpected, mismatched
end

-- ---------------------------------------------------------------- calling and taps

-- The error a forward raises while it unwinds through the modules: the path of the module
-- that failed is collected on the way up and the outermost call turns it into a message
-- ("layer1.0.conv1 (Conv2d): conv2d: weight expects 64 input channels, ...").
local ForwardError = {}
ForwardError.__index = ForwardError
local function format_error(e)
  if #e.path == 0 then return e.msg end
  return string.format("%s (%s): %s", table.concat(e.path, "."), e.type, e.msg)
end
ForwardError.__tostring = format_error

local depth = 0 -- modules whose forward is running

-- A hook seen by every module call: fn(module, output). models.summary uses it.
function Module.set_call_hook(fn)
  local prev = Module._hook
  Module._hook = fn
  return prev
end

local function invoke(self, fn, ...)
  depth = depth + 1
  local r = table.pack(pcall(fn, self, ...))
  depth = depth - 1
  if not r[1] then
    local e = r[2]
    if getmetatable(e) ~= ForwardError then
      local msg = tostring(e)
      -- an op's error raised from a layer file carries that file's position, which says
      -- nothing the module path does not ("conv2d: weight expects ..." stays)
      local rest = msg:match("^[^:]*/skd/[%w_/]+%.lua:%d+: ([%w_]+: .*)$")
      e = setmetatable({path = {}, msg = rest or msg, type = self:type()}, ForwardError)
    end
    if depth == 0 then error(format_error(e), 0) end
    local name = rawget(self, "_name")
    if name then table.insert(e.path, 1, name) end
    error(e, 0)
  end
  if rawget(self, "_tapped") then rawset(self, "_tap_out", r[2]) end
  if Module._hook then Module._hook(self, r[2]) end
  return table.unpack(r, 2, r.n)
end

function Module:__call(...)
  return invoke(self, self.forward, ...)
end

-- m:invoke(name, ...): the method m[name] called as m(...) calls forward — errors name the
-- module's path, taps and the call hook see its output (Conv2d:forward_folded_relu).
function Module:invoke(name, ...)
  local fn = self[name]
  if type(fn) ~= "function" then
    error(string.format("%s:invoke: no method '%s'", self:type(), tostring(name)), 2)
  end
  return invoke(self, fn, ...)
end

-- Whether a call hook is set (Module.set_call_hook): then every module is called, none fused.
function Module.call_hooked()
  return Module._hook ~= nil
end

function Module:forward()
  error(self:type() .. " has no forward", 2)
end

-- The last output of the module at a dotted path (nil before its first forward since the
-- tap). The first call registers the tap: untapped modules keep no reference to outputs.
function Module:tap(path)
  local m = self:get(path or "")
  rawset(m, "_tapped", true)
  return rawget(m, "_tap_out")
end

function Module:untap(path)
  local m = self:get(path or "")
  rawset(m, "_tapped", nil)
  rawset(m, "_tap_out", nil)
  return self
end

-- ---------------------------------------------------------------- printing

local function commas(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
Module._commas = commas

function Module:extra_repr() return "" end

local function subtree_count(m)
  local n = 0
  walk(m, "", function(_, x)
    for _, name in ipairs(x._params) do n = n + rawget(x, name):numel() end
  end)
  return n
end

local function repr(m, indent)
  local extra = m:extra_repr()
  local n = subtree_count(m)
  local note = n > 0 and ("  -- " .. commas(n)) or ""
  if #m._children == 0 then return m:type() .. "(" .. extra .. ")" .. note end
  local lines = {m:type() .. "(" .. note}
  local pad = indent .. "  "
  if extra ~= "" then lines[2] = pad .. extra end
  for _, name in ipairs(m._children) do
    lines[#lines + 1] = pad .. "(" .. name .. "): " .. repr(rawget(m, name), pad)
  end
  lines[#lines + 1] = indent .. ")"
  return table.concat(lines, "\n")
end

-- The module tree as PyTorch prints it, each line ending in its parameter count.
function Module:__tostring()
  local n = self:num_parameters()
  local trainable = 0
  for _, p in ipairs(self:parameters()) do
    if p.requires_grad_ then trainable = trainable + p:numel() end
  end
  return repr(self, "") .. string.format("\nTotal parameters: %s (trainable %s)", commas(n), commas(trainable))
end

return Module
