-- skd.train — what every training run shares: the progress line, the JSONL metrics log,
-- atomic checkpoints with resume, Ctrl-C → checkpoint and clean exit, NaN/Inf stops,
-- and evaluation over a dataset.
--
--   local r = skd.train.run{
--     name = "teacher", iterations = 2000, images_per_step = 8,
--     step = function(it, lr) ... return {ce = 0.53, aux = 0.61} end,   -- one optimisation step
--     lr = function(it) return skd.optim.poly(0.01, it - 1, 2000) end,
--     log = "results/teacher/log.jsonl",
--     checkpoint = {path = "results/teacher/last.safetensors", every = 500,
--                   parts = {model = net, optimizer = opt}, meta = {role = "teacher"},
--                   state = loader},   -- anything with :state() / :set_state(t) (e.g. a loader)
--     resume = true,
--   }
local utils = require "skd.utils"
local train = {}

-- ---------------------------------------------------------------- progress line

local Progress = {}
Progress.__index = Progress

function train.progress(total, opts)
  opts = opts or {}
  return setmetatable({total = total, name = opts.name or "train", t0 = skd.clock(),
                       images = 0, tty = skd.isatty(2), every = opts.every or 20,
                       quiet = opts.quiet, first_it = opts.first_it or 1}, Progress)
end

local function format_terms(terms)
  local keys = {}
  for k in pairs(terms) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%s %.4g", k, terms[k]) end
  return table.concat(parts, "  ")
end

function Progress:update(it, terms, lr, images)
  self.images = self.images + (images or 0)
  if self.quiet then return end
  local elapsed = skd.clock() - self.t0
  local done = it - self.first_it + 1
  local eta = done > 0 and elapsed / done * (self.total - it) or math.huge
  local line = string.format("%s %d/%d  %s%s  %.1f img/s  ETA %s", self.name, it, self.total,
    format_terms(terms), lr and string.format("  lr %.3g", lr) or "",
    elapsed > 0 and self.images / elapsed or 0, utils.duration(eta))
  if self.tty then
    io.stderr:write("\r\27[K" .. line)
    if it == self.total then io.stderr:write("\n") end
  elseif it % self.every == 0 or it == self.total or it == self.first_it then
    io.stderr:write(line .. "\n")
  end
  io.stderr:flush()
end

function Progress:finish()
  if self.tty and not self.quiet then io.stderr:write("\n") end
end

-- ---------------------------------------------------------------- checkpoints

local function is_optimizer(x) return type(x) == "table" and x.param_groups ~= nil end

-- One safetensors file holding every part: module tensors under "<part>.<name>", optimizer
-- state under "<part>.<key>", the RNG state and caller metadata as strings.
function train.save_checkpoint(path, parts, meta, state_provider)
  local tensors, md = {}, {}
  for pname, part in pairs(parts) do
    if is_optimizer(part) then
      local sd = part:state_dict()
      for k, t in pairs(sd.tensors) do tensors[pname .. "." .. k] = t end
      for k, v in pairs(sd.meta) do md[pname .. "." .. k] = tostring(v) end
    elseif type(part) == "table" and part.state_dict then
      for k, t in pairs(part:state_dict()) do tensors[pname .. "." .. k] = t end
    else
      error("save_checkpoint: part '" .. pname .. "' is neither a module nor an optimizer", 2)
    end
  end
  local rng = skd.rng_state()
  for i = 1, 4 do rng[i] = tostring(rng[i]) end
  md.rng = table.concat(rng, ",")
  if state_provider then
    for k, v in pairs(state_provider:state()) do md["state." .. k] = tostring(v) end
  end
  for k, v in pairs(meta or {}) do md[k] = tostring(v) end
  local dir = path:match("^(.*)/[^/]*$")
  if dir then skd.mkdir(dir) end
  skd.save(path, tensors, md)
end

-- Restores every part (strictly: a checkpoint that does not fit is an error), the RNG
-- state and the state provider; returns the metadata.
function train.load_checkpoint(path, parts, state_provider)
  local tensors, md = skd.load(path)
  for pname, part in pairs(parts) do
    local prefix = pname .. "."
    local sub, submeta = {}, {}
    for k, t in pairs(tensors) do
      if k:sub(1, #prefix) == prefix then sub[k:sub(#prefix + 1)] = t end
    end
    for k, v in pairs(md) do
      if k:sub(1, #prefix) == prefix then submeta[k:sub(#prefix + 1)] = v end
    end
    if is_optimizer(part) then
      part:load_state_dict({tensors = sub, meta = submeta})
    else
      local ok, err = pcall(part.load_state_dict, part, sub, {strict = true})
      if not ok then error("load_checkpoint: '" .. path .. "', part " .. pname .. ": " .. tostring(err), 2) end
    end
  end
  if md.rng then
    local s = {}
    for v in md.rng:gmatch("[^,]+") do s[#s + 1] = math.tointeger(tonumber(v)) end
    skd.set_rng_state(s)
  end
  if state_provider then
    local st = {}
    for k, v in pairs(md) do
      if k:sub(1, 6) == "state." then st[k:sub(7)] = tonumber(v) or v end
    end
    state_provider:set_state(st)
  end
  return md
end

-- ---------------------------------------------------------------- the run loop

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- Keeps only the log lines of iterations <= last_it: after a resume, the lines the killed
-- run wrote past its last checkpoint would otherwise appear twice.
local function trim_log(path, last_it)
  local text = utils.read_file(path)
  if not text then return end
  local keep = {}
  for line in text:gmatch("[^\n]+") do
    local it = tonumber(line:match('"it":(%d+)'))
    if not it or it <= last_it then keep[#keep + 1] = line end
  end
  skd.write_file(path, #keep > 0 and table.concat(keep, "\n") .. "\n" or "")
end

function train.run(cfg)
  assert(type(cfg) == "table", "train.run: expects a table of settings")
  local n = cfg.iterations
  if type(n) ~= "number" or n < 1 then error("train.run: iterations must be a positive number", 2) end
  if type(cfg.step) ~= "function" then error("train.run: step must be a function(it, lr)", 2) end
  local ck = cfg.checkpoint
  local first = 1
  if ck and cfg.resume and skd.exists(ck.path) then
    local md = train.load_checkpoint(ck.path, ck.parts, ck.state)
    first = (tonumber(md.iteration) or 0) + 1
    if not cfg.quiet then
      io.stderr:write(string.format("%s: resumed from %s at iteration %d\n", cfg.name or "train", ck.path, first - 1))
    end
  end
  local logf
  if cfg.log then
    local dir = cfg.log:match("^(.*)/[^/]*$")
    if dir then skd.mkdir(dir) end
    if first > 1 then trim_log(cfg.log, first - 1) else skd.write_file(cfg.log, "") end
    logf = assert(io.open(cfg.log, "a"))
  end
  local progress = train.progress(n, {name = cfg.name, quiet = cfg.quiet, first_it = first,
                                      every = cfg.report_every})
  local function checkpoint(it)
    if not ck then return end
    local meta = {iteration = it}
    for k, v in pairs(ck.meta or {}) do meta[k] = v end
    train.save_checkpoint(ck.path, ck.parts, meta, ck.state)
  end
  skd._trap_sigint(true)
  local t0, last, interrupted = skd.clock(), first - 1, false
  local ok, err = pcall(function()
    for it = first, n do
      local lr = cfg.lr and cfg.lr(it) or nil
      local terms = cfg.step(it, lr)
      for k, v in pairs(terms) do
        if not finite(v) then
          error(string.format("%s: loss term '%s' is %s at iteration %d; stopped%s",
            cfg.name or "train", k, tostring(v), it,
            ck and (" (the last good checkpoint is " .. ck.path .. ")") or ""), 0)
        end
      end
      last = it
      if logf then
        local rec = {it = it, lr = lr, time = skd.clock() - t0}
        for k, v in pairs(terms) do rec[k] = v end
        logf:write(utils.json(rec), "\n")
        logf:flush()
      end
      progress:update(it, terms, lr, cfg.images_per_step)
      if cfg.on_step then cfg.on_step(it, terms) end
      if ck and ((ck.every and it % ck.every == 0) or it == n) then checkpoint(it) end
      if skd._interrupted() then
        if ck and (not ck.every or it % ck.every ~= 0) and it ~= n then checkpoint(it) end
        io.stderr:write(string.format("\n%s: interrupted at iteration %d%s\n", cfg.name or "train", it,
          ck and ("; checkpoint saved to " .. ck.path) or ""))
        interrupted = true
        return
      end
    end
  end)
  skd._trap_sigint(false)
  if logf then logf:close() end
  progress:finish()
  if not ok then error(err, 0) end
  local seconds = skd.clock() - t0
  local steps = last - first + 1
  return {iterations = last, interrupted = interrupted, seconds = seconds,
          images_per_second = steps > 0 and (cfg.images_per_step or 0) * steps / seconds or 0}
end

-- ---------------------------------------------------------------- evaluation

-- Runs model over a dataset in no-grad eval mode and fills a confusion matrix: logits
-- upsampled (bilinear, align_corners) to the label size, whole image, optional flip
-- averaging (softmax of the image and of its mirror). opts: {num_classes, batch=1,
-- flip=false, transform=fn(sample)->image, limit=n, ignore_index=255}.
function train.evaluate(model, dataset, opts)
  opts = opts or {}
  local nc = opts.num_classes or (dataset.classes and #dataset.classes)
  if not nc then error("evaluate: num_classes is needed (the dataset has no class list)", 2) end
  local cm = skd.metrics.confusion(nc, {ignore_index = opts.ignore_index or 255})
  local was_training = model.training
  model:eval()
  local n = math.min(#dataset, opts.limit or #dataset)
  skd.no_grad(function()
    for i = 1, n do
      local s = dataset[i]
      local img = opts.transform and opts.transform(s) or s.image
      local x = img:unsqueeze(1)
      local function logits_of(input)
        local out = model(input)
        local z = type(out) == "table" and not skd.is_tensor(out) and out.logits or out
        local H, W = s.label:size(1), s.label:size(2)
        if z:size(3) ~= H or z:size(4) ~= W then
          z = skd.interpolate(z, {H, W}, {mode = "bilinear", align_corners = true})
        end
        return z
      end
      local z = logits_of(x)
      if opts.flip then
        z = skd.softmax(z, 2) + skd.softmax(logits_of(x:flip(4)), 2):flip(4)
      end
      cm:add(z, s.label:unsqueeze(1)) -- logits: the matrix takes the argmax over classes
    end
  end)
  if was_training then model:train() end
  return cm
end

return train
