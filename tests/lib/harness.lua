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

-- A table of bad calls, each {fn, fragment, ...}: every fn must raise an error whose message
-- holds all its fragments (T.raises). The first call that does not names its position.
function T.raises_each(cases)
  for i, c in ipairs(cases) do
    local ok, err = pcall(T.raises, c[1], table.unpack(c, 2))
    if not ok then error("bad call " .. i .. ": " .. tostring(err), 2) end
  end
end

-- fn() run at 1 thread, then at 2 (the count restored after, also on error): its results,
-- tensors and numbers, must be bit-identical between the two runs.
function T.same_at_threads(fn)
  local n0 = skd.threads()
  local ok, a, b = pcall(function()
    skd.threads(1)
    local r1 = table.pack(fn())
    skd.threads(2)
    return r1, table.pack(fn())
  end)
  skd.threads(n0)
  if not ok then error(a, 0) end
  T.eq(b.n, a.n, "result count")
  for i = 1, a.n do
    if skd.is_tensor(a[i]) then T.near(b[i], a[i], 0, "result " .. i .. " at 2 threads")
    else T.eq(b[i], a[i], "result " .. i .. " at 2 threads") end
  end
end

-- "2x3x4": a tensor's shape as text, for T.eq on shapes.
function T.shape(t) return table.concat(t:size(), "x") end

-- A 1×C×h×w tensor from per-pixel channel vectors given row-major: px[k] = {c1, c2, ...}.
function T.from_pixels(h, w, px)
  local C = #px[1]
  local t = skd.zeros(1, C, h, w)
  for k, v in ipairs(px) do
    local y, x = (k - 1) // w + 1, (k - 1) % w + 1
    for c = 1, C do t:set(v[c], 1, c, y, x) end
  end
  return t
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
