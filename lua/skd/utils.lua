-- skd.utils — small pieces the library and experiments share: JSON, durations, tables.
local utils = {}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = {['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r'}
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

-- JSON text of a Lua value: keys sorted (deterministic files), NaN/inf as null (JSON has
-- no such numbers), integers without a decimal point.
function utils.json(v)
  local ty = type(v)
  if ty == "nil" then return "null"
  elseif ty == "boolean" then return tostring(v)
  elseif ty == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.8g", v)
  elseif ty == "string" then return encode_string(v)
  elseif ty == "table" then
    if is_array(v) and next(v) ~= nil then
      local parts = {}
      for i = 1, #v do parts[i] = utils.json(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local val = v[k]
      if val == nil then val = v[tonumber(k)] end
      parts[#parts + 1] = encode_string(k) .. ":" .. utils.json(val)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif skd.is_tensor(v) then return utils.json(v:totable())
  end
  error("json: cannot encode a " .. ty, 2)
end

-- "1h02m", "3m12s", "45s"
function utils.duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end

-- A plain-text table: rows of strings, first row the header, columns padded.
function utils.format_table(rows, align)
  local widths = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, #tostring(c)) end
  end
  local out = {}
  for ri, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do
      local s = tostring(c)
      local left = (align and align[i] == "l") or (not align and i == 1)
      cells[i] = left and s .. string.rep(" ", widths[i] - #s) or string.rep(" ", widths[i] - #s) .. s
    end
    out[#out + 1] = table.concat(cells, "  ")
    if ri == 1 then
      local rule = {}
      for i = 1, #widths do rule[i] = string.rep("-", widths[i]) end
      out[#out + 1] = table.concat(rule, "  ")
    end
  end
  return table.concat(out, "\n")
end

-- Markdown table of the same rows.
function utils.markdown_table(rows)
  local out = {}
  for ri, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do cells[i] = tostring(c) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
    if ri == 1 then out[#out + 1] = "|" .. string.rep("---|", #r) end
  end
  return table.concat(out, "\n") .. "\n"
end

-- Reads a whole file, or nil and a message.
function utils.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- FNV-1a 64-bit hash of a string, as 16 hex digits (the experiment-script hash in checkpoints).
function utils.hash(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 0x100000001b3
  end
  return string.format("%016x", h)
end

-- Mean and (sample) standard deviation of a list of numbers.
function utils.mean_std(xs)
  local n, s = #xs, 0
  for _, x in ipairs(xs) do s = s + x end
  local mean = s / n
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - mean) ^ 2 end
  return mean, n > 1 and math.sqrt(v / (n - 1)) or 0
end

return utils
