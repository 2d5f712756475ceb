-- skd.models.summary(m, {input={3,H,W}}): runs one forward (batch 1, evaluation mode, no
-- grad) and tabulates every module that computes — layer, type, output shape, parameters,
-- multiply-adds — with totals. Prints the table (unless print=false) and returns the rows
-- and the totals.
local skd = require "skd"
local nn = require "skd.nn"
local Module = nn.Module

local function shape_of(out)
  if skd.is_tensor(out) then return Module._shape_str(out) end
  if type(out) == "table" then
    local t = out.logits or out[1]
    if skd.is_tensor(t) then return Module._shape_str(t) end
  end
  return "-"
end

local function own_params(m)
  local n = 0
  for _, name in ipairs(m._params) do n = n + rawget(m, name):numel() end
  return n
end

local function human(n)
  if n >= 1e9 then return string.format("%.2f G", n / 1e9) end
  if n >= 1e6 then return string.format("%.2f M", n / 1e6) end
  if n >= 1e3 then return string.format("%.1f k", n / 1e3) end
  return tostring(math.floor(n))
end

local function format_table(rows, total)
  local w1, w2, w3 = #"layer", #"type", #"output"
  for _, r in ipairs(rows) do
    w1, w2, w3 = math.max(w1, #r.name), math.max(w2, #r.type), math.max(w3, #r.output)
  end
  local fmt = "%-" .. w1 .. "s  %-" .. w2 .. "s  %-" .. w3 .. "s  %12s  %12s"
  local lines = {string.format(fmt, "layer", "type", "output", "params", "mult-adds")}
  lines[2] = string.rep("-", #lines[1])
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format(fmt, r.name, r.type, r.output, Module._commas(r.params), human(r.macs))
  end
  lines[#lines + 1] = lines[2]
  lines[#lines + 1] = string.format("total: %s parameters (%s), %s multiply-adds per image of %s",
    Module._commas(total.params), human(total.params), human(total.macs), total.input)
  return table.concat(lines, "\n")
end

return function(m, opts)
  opts = opts or {}
  local input = opts.input or {3, 224, 224}
  local x = skd.is_tensor(input) and input or skd.zeros(1, table.unpack(input))
  local paths = {}
  for name, mod in m:named_modules() do paths[mod] = name == "" and "(root)" or name end
  local rows = {}
  local prev = Module.set_call_hook(function(mod, out)
    local leaf = #mod._children == 0
    if leaf or mod.macs or own_params(mod) > 0 then
      rows[#rows + 1] = {name = paths[mod] or "?", type = mod:type(), output = shape_of(out),
        params = leaf and mod:num_parameters() or own_params(mod),
        macs = (mod.macs and skd.is_tensor(out)) and mod:macs(out) or 0}
    end
  end)
  local was_training = m.training
  m:eval()
  local ok, err = pcall(skd.no_grad, function() return m(x) end)
  Module.set_call_hook(prev)
  m:train(was_training)
  if not ok then error("summary: the forward failed: " .. tostring(err), 2) end
  local total = {params = m:num_parameters(), macs = 0, input = Module._shape_str(x)}
  for _, r in ipairs(rows) do total.macs = total.macs + r.macs end
  if opts.print ~= false then print(format_table(rows, total)) end
  return rows, total
end
