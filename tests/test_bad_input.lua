-- Adversarial input from Lua: every call here once crashed, leaked, corrupted state or
-- silently did something else (review of the finished tree). Each must now raise an error
-- that names the op and what it expected, or give the defined result stated beside it.
-- Under the sanitizer build (make SAN=1) the overflow cases were UndefinedBehaviorSanitizer
-- aborts; the sweep at the end calls every C function of the module with hostile arguments.
local T = require "harness"
skd.manual_seed(3)

local MAXI, MINI = math.maxinteger, math.mininteger

T.test("sizes whose products overflow are errors, not wrapped strides", function()
  T.raises_each({
    -- a 0-size dimension let the other sizes grow past int64 in the strides
    {function() return skd.zeros(0, MAXI, MAXI) end, "tensor", "too many elements"},
    {function() return skd.adaptive_avg_pool2d(skd.zeros(2, 0, 5, 5), MAXI) end, "too many elements"},
    -- reshape multiplied the sizes before comparing them with the element count
    {function() return skd.randn(3):reshape(MAXI, MAXI) end, "reshape", "overflows"},
    {function() return skd.randn(3):view(MAXI, MAXI, -1) end, "reshape", "overflows"},
    -- with a 0 size the element count stays 0, but reshape_to's strides still overflowed
    {function() return skd.zeros(2, 0, 5, 5):reshape(0, 2, MAXI) end, "reshape", "overflows"},
    -- the axis tables held oh + ow entries
    {function() return skd.interpolate(skd.randn(1, 1, 2, 2), {MAXI, MAXI}) end, "interpolate", "2^31"},
    -- nh·nw was compared with N
    {function() return skd._pairwise_local(skd.zeros(1, 2, 4), skd.zeros(1, 2, 4), MAXI, 2, 1) end,
     "pairwise_local", "node grid"},
    {function() return skd._pairwise_local(skd.zeros(1, 2, 4), skd.zeros(1, 2, 4), 2 ^ 62 // 1, 4, 1) end,
     "pairwise_local", "node grid"},
  })
end)

T.test("split by a huge piece size is one piece (its piece count overflowed)", function()
  local pieces = skd.split(skd.randn(5), MAXI, 1)
  T.eq(#pieces, 1)
  T.eq(pieces[1]:numel(), 5)
end)

T.test("narrow cannot reach outside its dimension through wrapped arithmetic", function()
  local t = skd.arange(3)
  T.raises_each({
    -- start - 1 wrapped to maxinteger, start + length wrapped negative: the view read
    -- memory past the storage
    {function() return t:narrow(1, MINI, 2) end, "narrow", "before the first position"},
    {function() return t:narrow(1, 2, MAXI) end, "narrow", "do not fit", "size 3"},
    {function() return t:narrow(1, 5, 0) end, "narrow", "do not fit"},
  })
  T.eq(t:narrow(1, 4, 0):numel(), 0) -- the empty slice at the end stays valid
  T.near(t:narrow(1, 2, 2), {1, 2}, 0)
end)

T.test("index assignment checks its value before taking the row, and leaks nothing", function()
  T.raises_each({
    {function() local t = skd.zeros(3, 3); t[1] = "x" end, "index assignment", "number or a tensor", "string"},
    {function() local t = skd.zeros(3, 3); t[1] = {1, 2, 3} end, "index assignment", "table"},
    {function() local t = skd.zeros(3, 3); t[MINI] = 1 end, "index assignment", tostring(MINI), "size 3"},
    {function() local t = skd.zeros(3, 3); t[1] = skd.zeros(2) end, "copy", "element count"},
  })
  -- the row view made before the check held the whole storage forever
  collectgarbage(); collectgarbage()
  local before = skd.memory().in_use
  do
    local t = skd.zeros(512, 512)
    for _ = 1, 4 do pcall(function() t[1] = "x" end) end
  end
  collectgarbage(); collectgarbage()
  T.eq(skd.memory().in_use, before, "bytes in use after the tensor is collected")
  local t = skd.zeros(2, 2)
  t[2] = 5
  t[1] = skd.tensor({1, 2})
  T.near(t, {{1, 2}, {5, 5}}, 0)
end)

T.test(".grad takes a contiguous float32 tensor of the shape, or nil", function()
  local x = skd.randn(3, 4):requires_grad()
  T.raises_each({
    -- x.grad = 5 silently dropped the gradient
    {function() x.grad = 5 end, "grad", "tensor or nil", "number"},
    -- int32 and strided gradients failed later, inside backward or the optimiser
    {function() x.grad = skd.zeros(3, 4):int() end, "grad", "float32", "int32 3x4"},
    {function() x.grad = skd.zeros(4, 3):transpose(1, 2) end, "grad", "non-contiguous", "3x4"},
    {function() x.grad = skd.zeros(4, 3) end, "grad", "shape 3x4", "4x3"},
  })
  x.grad = skd.ones(3, 4)
  ;(x * 2):sum():backward()
  T.near(x.grad, skd.full({3, 4}, 3), 0)
  x.grad = nil
  T.eq(x.grad, nil)
end)

T.test("optimiser kernels read their arguments before turning grad mode off", function()
  local p = skd.zeros(3)
  T.raises(function() skd._sgd_step(p, p, nil, "x") end, "number expected")
  T.eq(skd.grad_enabled(), true, "grad mode after a bad _sgd_step")
  T.raises(function() skd._adam_step(p, p, p, p, 0.1, 0.9, 0.99, 1e-8, 0, "x") end, "number expected")
  T.eq(skd.grad_enabled(), true, "grad mode after a bad _adam_step")
end)

T.test("integers that do not fit 32 bits are errors, not wrapped into range", function()
  local x, w = skd.randn(1, 1, 5, 5), skd.randn(1, 1, 3, 3)
  local n0 = skd.threads()
  T.raises_each({
    -- 2^32+1 became 1 (stride), 2 (kernel), 16 (width), 1 (threads)
    {function() return skd.conv2d(x, w, nil, {stride = 4294967297}) end, "conv2d", "stride", "out of range"},
    {function() return skd.conv2d(x, w, nil, {padding = {4294967297, 0}}) end, "conv2d", "padding", "out of range"},
    {function() return skd.conv2d(x, w, nil, {groups = 4294967297}) end, "conv2d", "groups", "2^31-1"},
    {function() return skd.conv2d(x, w, nil, {groups = 1e300}) end, "conv2d", "groups"},
    {function() return skd.max_pool2d(x, 4294967298) end, "max_pool2d", "kernel size", "32 bits"},
    {function() return skd._dataset_synthetic(1, "val", 1, 8, 4294967312) end, "synthetic", "width", "32 bits"},
    {function() return skd._confusion(4294967299) end, "confusion", "num_classes", "32 bits"},
    {function() return skd.threads(4294967297) end, "threads", "1 to 1024", "4294967297"},
    {function() return skd.randn(3):sum(MINI) end, "dimension " .. MINI .. " out of range"},
    -- an undefined double-to-int cast decided whether the crop size was an integer
    {function() return skd._transform_apply(skd.rand(3, 8, 8), skd.zeros(8, 8):int(), {crop = {1e300, 4}}) end,
     "transform", "crop sizes", "0..2^31-1"},
    -- core/conv2d.c forms 2·padding in int (UBSan: signed overflow)
    {function() return skd.conv2d(x, w, nil, {padding = 1073741824}) end, "conv2d", "padding", "2^24"},
  })
  T.eq(skd.threads(), n0, "thread count after the bad call")
end)

T.test("float to int32 truncates and saturates; skd.tensor's int32 path truncates too", function()
  -- skd.tensor({1.5}, {dtype="int32"}) was 0 where :int() gives 1
  T.near(skd.tensor({1.5, 2.7, -1.5}, {dtype = "int32"}), {1, 2, -1}, 0)
  T.near(skd.tensor({1.5, 2.7, -1.5}):int(), {1, 2, -1}, 0)
  -- out of range and NaN were undefined casts
  local v = skd.tensor({1e30, -1e30, 0 / 0}):int()
  T.eq(v:get(1), 2147483647)
  T.eq(v:get(2), -2147483648)
  T.eq(v:get(3), 0)
  T.eq(skd.full({1}, 1e300, {dtype = "int32"}):get(1), 2147483647)
end)

T.test("arange with a huge, infinite or NaN count is an error, not an empty tensor", function()
  T.raises_each({
    {function() return skd.arange(0, 1e300) end, "arange", "at most 2^40"},
    {function() return skd.arange(0, 10, 1e-300) end, "arange", "at most 2^40"},
    {function() return skd.arange(0 / 0) end, "arange"},
    {function() return skd.arange(1 / 0) end, "arange"},
  })
  T.eq(skd.arange(3, 1):numel(), 0) -- an empty range is still fine
end)

T.test("the generator refuses its all-zero fixed point", function()
  local s = skd.rng_state()
  T.raises(function() skd.set_rng_state({0, 0, 0, 0}) end, "set_rng_state", "all-zero")
  T.eq(table.concat(skd.rng_state(), ","), table.concat(s, ","), "state unchanged")
end)

T.test("file helpers: empty paths and misleading messages", function()
  -- mkdir("") walked the buffer from its second byte, past the terminator
  T.raises(function() skd.mkdir("") end, "mkdir", "empty")
  -- a stale errno made every unreadable PNG "no such file"
  local path = os.tmpname()
  local f = assert(io.open(path, "w")); f:write("not a png\n"); f:close()
  local err = T.raises(function() skd._png_read(path) end, "png", path)
  T.ok(not err:find("no such file", 1, true), "an existing file reported missing: " .. err)
  os.remove(path)
end)

T.test("dataset and viewer indices: no wrapped int arithmetic, no freed sample read", function()
  local ds = skd._dataset_synthetic(1, "val", 2, 8, 8)
  local ld = skd._loader_new(ds, {batch = 1, prefetch = false})
  local v = skd.viewer.open({mode = "png"})
  T.raises_each({
    -- i - 1 overflowed at math.mininteger (UBSan)
    {function() return ds:get(MINI) end, "synthetic", "out of range"},
    {function() return ld:set_state(MINI, 0) end, "loader", "out of range"},
    -- the size message read the sample just freed (ASan: heap-use-after-free)
    {function() return v:show({label = skd.zeros(0, 4):int()}) end, "viewer.show", "0x4", "1..8192"},
    -- the int cast made a 1x(2^32+5) map a 1x5 one
    {function() return v:show({label = skd.zeros(1, 1):int():expand(1, 4294967301)}) end,
     "viewer.show", "1x4294967301"},
  })
  T.eq(ds:paths(MINI), nil)
  v:pick(MAXI, MINI) -- off the panels: ignored
  v:close()
end)

T.test("nn layers refuse sizes they could never run with", function()
  local nn = skd.nn
  T.raises_each({
    {function() return nn.Conv2d(3, 4, 0) end, "Conv2d kernel", ">= 1", "0"},
    {function() return nn.Conv2d(3, 4, 3, {groups = 0}) end, "Conv2d groups"}, -- was 'n%0'
    {function() return nn.Conv2d(-3, 4, 3) end, "Conv2d in_channels"},
    {function() return nn.Conv2d(3, 4, {3, 1.5}) end, "Conv2d kernel", "1.5"},
    {function() return nn.Conv2d(3, 4, 3, {padding = -1}) end, "Conv2d padding", ">= 0"},
    {function() return nn.BatchNorm2d(0) end, "BatchNorm2d num_features"},
    {function() return nn.MaxPool2d(0) end, "MaxPool2d kernel"},
    {function() return nn.AvgPool2d(2, {stride = 0}) end, "AvgPool2d stride"},
    {function() return nn.AdaptiveAvgPool2d(0) end, "AdaptiveAvgPool2d size"},
    {function() return nn.Linear(-1, 3) end, "Linear in_features"},
    {function() return nn.Upsample({scale_factor = 0}) end, "Upsample", "scale_factor"},
    {function() return nn.Dropout2d(1) end, "Dropout2d", "[0, 1)"},
    {function() return nn.SelfAttention(0) end, "Conv2d in_channels"},
  })
  T.eq(T.shape(nn.Conv2d(4, 6, 3.0, {padding = 1.0, groups = 2})(skd.randn(1, 4, 5, 5))), "1x6x5x5")
end)

-- Every C function of the module (skd.f and the tensor methods) with hostile arguments: the
-- call must return or raise a string error, never crash. A short version of the sweep the
-- review ran (pairs and triples of such values, also under ASan/UBSan).
T.test("every C function survives hostile arguments", function()
  local NIL = {} -- stands for nil in the list
  local values = {
    NIL, false, "x", {}, -3, 0, MAXI, MINI, 2 ^ 40, 1.5, 0 / 0, {2, 3}, {-1, 4}, {0, 0},
    skd.tensor(2.5), skd.randn(5), skd.randn(3, 4), skd.randn(2, 3, 5, 5),
    skd.zeros(2, 3, 5, 5):int(), skd.zeros(0, 3), skd.zeros(2, 0, 5, 5),
    skd.randn(4, 6):transpose(1, 2), skd.randn(1, 3):expand(4, 3),
  }
  local skip = {gradcheck = true, no_grad = true, threads = true, manual_seed = true, save = true,
                write_file = true, mkdir = true, _png_write = true, _trap_sigint = true,
                set_rng_state = true, grad_enabled = true, conv_algo = true, _loader_new = true}
  local names = {}
  for k, v in pairs(skd) do
    if type(v) == "function" and not skip[k] then names[#names + 1] = k end
  end
  table.sort(names)
  local calls, errors = 0, 0
  for _, name in ipairs(names) do
    local f = skd[name]
    for i = 1, #values do
      for j = 1, #values, 3 do
        local a, b = values[i], values[j]
        if a == NIL then a = nil end
        if b == NIL then b = nil end
        local ok, err = pcall(f, a, b)
        calls = calls + 1
        if not ok then
          errors = errors + 1
          if type(err) ~= "string" then error(name .. " raised a " .. type(err)) end
        end
      end
    end
  end
  T.eq(skd.grad_enabled(), true, "grad mode after the sweep")
  T.ok(errors > calls // 2, string.format("only %d of %d hostile calls raised", errors, calls))
end)

T.done()
