-- tests/lib/torchref.lua — PyTorch as an independent reference inside tests, never a
-- dependency: tests ask R.available() and skip (with the reason) when no python3 with torch.
--
--   local R = require "torchref"
--   R.test("max_pool2d matches PyTorch", function()  -- skipped, with the reason, without torch
--     local out = R.run("out = F.max_pool2d(x, 3, 2, ceil_mode=True)", {x = x})
--     T.near(skd.max_pool2d(x, 3, {stride = 2, ceil_mode = true}), out.out, 1e-6)
--   end)
--
-- Inputs go to python as float32 (int32 stays int32, as int64 for torch), in a temporary text
-- file; the code runs with torch, F (torch.nn.functional) and the inputs as globals, and every
-- global tensor it assigns whose name is in `outs` (default {"out"}) comes back as a skd tensor.
local R = {}
local T = require "harness"

local python, why_not

-- The interpreter to use: $SKD_PYTHON, python3, then the system's /usr/bin/python3 (Debian's
-- python3-torch installs there, while a pyenv python3 may come first on PATH).
function R.available()
  if python then return true end
  if why_not then return false, why_not end
  for _, py in ipairs({os.getenv("SKD_PYTHON") or false, "python3", "/usr/bin/python3"}) do
    if py and os.execute(py .. ' -c "import torch" >/dev/null 2>&1') then
      python = py
      return true
    end
  end
  why_not = "no python3 with torch (python3 -c 'import torch' fails)"
  return false, why_not
end

-- T.test(name, fn) when torch is there; otherwise the test is listed as skipped, with why.
function R.test(name, fn)
  local ok, why = R.available()
  if ok then T.test(name, fn) else T.skip(name, why) end
end

local function write_tensor(f, name, t)
  local shape = t:size()
  local flat = t:detach():contiguous():reshape(-1)
  local vals = flat:totable()
  local fmt = t:dtype() == "int32" and "%d" or "%.9g"
  local parts = {}
  for i = 1, #vals do parts[i] = string.format(fmt, vals[i]) end
  f:write(name, " ", t:dtype(), " ", #shape == 0 and "-" or table.concat(shape, ","), "\n")
  f:write(table.concat(parts, " "), "\n")
end

local PRELUDE = [[
import sys, torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float32)
def _read(path):
    env = {}
    with open(path) as f:
        lines = f.read().split("\n")
    for k in range(0, len(lines) - 1, 2):
        name, dtype, shape = lines[k].split(" ")
        shape = [] if shape == "-" else [int(s) for s in shape.split(",")]
        vals = lines[k + 1].split()
        if dtype == "int32":
            t = torch.tensor([int(v) for v in vals], dtype=torch.int64)
        else:
            t = torch.tensor([float(v) for v in vals], dtype=torch.float32)
        env[name] = t.reshape(shape)
    return env
_g = dict(torch=torch, F=F)
_g.update(_read(sys.argv[1]))
exec(open(sys.argv[2]).read(), _g)
for _name in sys.argv[3].split(","):
    _t = _g[_name]
    if not torch.is_tensor(_t):
        _t = torch.tensor(_t)
    _t = _t.detach()
    _dt = "int32" if not _t.is_floating_point() else "float32"
    print(_name, _dt, "-" if _t.dim() == 0 else ",".join(str(s) for s in _t.shape))
    print(" ".join(repr(float(v)) if _dt == "float32" else str(int(v)) for v in _t.reshape(-1).tolist()))
]]

-- Runs code with the inputs ({name = skd tensor}); returns {name = skd tensor} for outs.
function R.run(code, inputs, outs)
  assert(R.available(), why_not)
  outs = outs or {"out"}
  local base = os.tmpname()
  local data, prog, pre = base .. ".in", base .. ".py", base .. ".pre.py"
  local f = assert(io.open(data, "w"))
  for name, t in pairs(inputs) do write_tensor(f, name, t) end
  f:close()
  f = assert(io.open(prog, "w")); f:write(code, "\n"); f:close()
  f = assert(io.open(pre, "w")); f:write(PRELUDE); f:close()
  local p = assert(io.popen(string.format("%s %s %s %s %s 2>&1", python, pre, data, prog,
                                          table.concat(outs, ","))))
  local text = p:read("a")
  p:close()
  for _, path in ipairs({base, data, prog, pre}) do os.remove(path) end
  local result, lines = {}, {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  local k = 1
  while k < #lines do
    local name, dtype, shape = lines[k]:match("^(%S+) (%a+%d*) (%S+)$")
    k = k + 1
    if name and not result[name] then
      local vals = {}
      for v in lines[k]:gmatch("%S+") do vals[#vals + 1] = tonumber(v) end
      local dims = {}
      if shape ~= "-" then for s in shape:gmatch("%d+") do dims[#dims + 1] = tonumber(s) end end
      local t = skd.tensor(vals, {dtype = dtype})
      result[name] = #dims == 0 and t:reshape({}) or t:reshape(dims)
      k = k + 1
    end
  end
  for _, name in ipairs(outs) do
    if not result[name] then error("torch reference failed:\n" .. text, 2) end
  end
  return result
end

return R
