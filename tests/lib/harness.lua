-- tests/lib/harness.lua — the one test harness: named tests, assertions, gradcheck, and the
-- closing line "N passed, M failed" that tests/run.sh adds up.
--
--   local T = require "harness"
--   T.test("add broadcasts", function() T.near(a + b, expected, 1e-6) end)
--   T.done()
local T = {}
local passed, failed = 0, 0
local only = os.getenv("SKD_TEST_ONLY")

function T.test(name, fn)
  if only and not name:find(only, 1, true) then return end
  local t0 = skd.clock()
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print(string.format("ok    %-60s %.2fs", name, skd.clock() - t0))
  else
    failed = failed + 1
    print("FAIL  " .. name .. "\n      " .. tostring(err):gsub("\n", "\n      "))
  end
end

function T.skip(name, why)
  print("skip  " .. name .. ": " .. why)
end

local function fmt(v)
  if skd.is_tensor(v) then return tostring(v) end
  return tostring(v)
end

function T.ok(cond, msg)
  if not cond then error(msg or "assertion failed", 2) end
end

function T.eq(a, b, msg)
  if a ~= b then error((msg and msg .. ": " or "") .. "expected " .. fmt(b) .. ", got " .. fmt(a), 2) end
end

-- Max |a - b| over tensors (any shapes with equal element count) or numbers.
function T.maxdiff(a, b)
  if type(a) == "number" and type(b) == "number" then return math.abs(a - b) end
  if type(b) == "table" then b = skd.tensor(b) end
  if type(a) == "table" then a = skd.tensor(a) end
  if type(b) == "number" then b = skd.full(a:size(), b) end
  T.eq(a:numel(), b:numel(), "element count")
  return (a:float():reshape(-1) - b:float():reshape(-1)):abs():max():item()
end

-- a ≈ b within tol (absolute), for numbers, tensors or nested tables.
function T.near(a, b, tol, msg)
  tol = tol or 1e-5
  local d = T.maxdiff(a, b)
  if not (d <= tol) then
    error(string.format("%smax difference %.3g exceeds %.3g", msg and msg .. ": " or "", d, tol), 2)
  end
end

-- fn(...) must raise an error whose message contains every given substring (plain match).
function T.raises(fn, ...)
  local ok, err = pcall(fn)
  if ok then error("expected an error, but the call succeeded", 2) end
  err = tostring(err)
  for _, s in ipairs({...}) do
    if not err:find(s, 1, true) then
      error("error message lacks '" .. s .. "': " .. err, 2)
    end
  end
  return err
end

-- Finite-difference gradient check of fn over the inputs (those with requires_grad).
function T.gradcheck(fn, inputs, opts)
  local ok, r = skd.gradcheck(fn, inputs, opts)
  if not ok then error("gradcheck failed: " .. r.message, 2) end
  return r
end

function T.done()
  print(string.format("%d passed, %d failed", passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

return T
