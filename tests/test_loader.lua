-- The loader: epochs and shuffling, prefetch on a worker thread giving exactly the batches of
-- the synchronous path, exact resume from a saved state, errors from the worker, shutdown.
local T = require "harness"

local int = {dtype = "int32"}
local ds = skd.data.synthetic{split = "train", n = 10, size = {48, 64}, seed = 5}
local aug = {scale = {0.5, 2.0}, crop = {40, 40}, flip = true, mean = skd.data.imagenet_mean,
             std = skd.data.imagenet_std}

local function same_batch(a, b, what)
  T.eq(#a.index, #b.index, what .. ": batch size")
  for k = 1, #a.index do T.eq(a.index[k], b.index[k], what .. ": index " .. k) end
  T.eq(T.maxdiff(a.image, b.image), 0, what .. ": image bytes")
  T.eq(T.maxdiff(a.label, b.label), 0, what .. ": label bytes")
end

T.test("one epoch visits every sample once; drop_last; batch shapes", function()
  local ld = skd.data.loader(ds, {batch = 4, shuffle = true, seed = 1, transform = aug})
  T.eq(#ld, 3)
  local seen, sizes = {}, {}
  for b in ld do
    sizes[#sizes + 1] = #b.index
    local sz = b.image:size()
    T.eq(sz[1], #b.index); T.eq(sz[2], 3); T.eq(sz[3], 40); T.eq(sz[4], 40)
    T.eq(b.label:dim(), 3); T.eq(b.label:dtype(), "int32")
    for _, i in ipairs(b.index) do
      T.ok(not seen[i], "index " .. i .. " twice")
      seen[i] = true
    end
  end
  T.eq(table.concat(sizes, ","), "4,4,2")
  for i = 1, 10 do T.ok(seen[i], "index " .. i .. " missing") end
  T.eq(ld:state().epoch, 2, "the loop ends at the start of the next epoch")
  T.eq(ld:state().position, 0)
  local dl = skd.data.loader(ds, {batch = 4, drop_last = true})
  T.eq(#dl, 2)
  local n = 0
  for b in dl do n = n + 1; T.eq(#b.index, 4) end
  T.eq(n, 2)
end)

T.test("order: dataset order without shuffle; a new permutation per epoch with it", function()
  local plain = skd.data.loader(ds, {batch = 5})
  T.eq(table.concat(plain:next().index, ","), "1,2,3,4,5")
  local ld = skd.data.loader(ds, {batch = 10, shuffle = true, seed = 7})
  local e1 = table.concat(ld:next().index, ",")
  local e2 = table.concat(ld:next().index, ",") -- next() rolls over into epoch 2
  T.ok(e1 ~= e2, "epochs differ: " .. e1 .. " / " .. e2)
  T.ok(e1 ~= "1,2,3,4,5,6,7,8,9,10", "shuffled")
  -- the seed comes from skd.manual_seed when not given
  skd.manual_seed(11)
  local a = table.concat(skd.data.loader(ds, {batch = 10, shuffle = true}):next().index, ",")
  skd.manual_seed(11)
  local b = table.concat(skd.data.loader(ds, {batch = 10, shuffle = true}):next().index, ",")
  T.eq(a, b)
end)

T.test("prefetch on and off give identical batches", function()
  local on = skd.data.loader(ds, {batch = 3, shuffle = true, seed = 3, transform = aug, prefetch = true})
  local off = skd.data.loader(ds, {batch = 3, shuffle = true, seed = 3, transform = aug, prefetch = false})
  for k = 1, 9 do same_batch(on:next(), off:next(), "batch " .. k) end -- crosses two epoch ends
  on:close()
  off:close()
end)

T.test("a batch is its samples, augmented with the per-(epoch, index) seed", function()
  local ld = skd.data.loader(ds, {batch = 2, shuffle = true, seed = 9, transform = aug})
  local b = ld:next()
  -- the same sample, augmented the same way, in another loader's different batch position
  local one = skd.data.loader(ds, {batch = 1, shuffle = true, seed = 9, transform = aug, prefetch = false})
  local first = one:next()
  T.eq(first.index[1], b.index[1])
  T.eq(T.maxdiff(first.image, b.image:narrow(1, 1, 1)), 0)
  T.eq(T.maxdiff(first.label, b.label:narrow(1, 1, 1)), 0)
end)

T.test("state / set_state resume with exactly the next batches", function()
  local opts = {batch = 3, shuffle = true, seed = 21, transform = aug}
  local a = skd.data.loader(ds, opts)
  for _ = 1, 5 do a:next() end
  local s = a:state()
  T.eq(s.epoch, 2); T.eq(s.position, 3) -- epoch 1 was 3 + 3 + 3 + 1
  local want = {}
  for k = 1, 4 do want[k] = a:next() end
  local b = skd.data.loader(ds, opts) -- a fresh loader, as after a restart
  b:set_state(s)
  for k = 1, 4 do same_batch(b:next(), want[k], "resumed batch " .. k) end
  -- going back on a loader with a prefetched batch in flight
  a:set_state(s)
  same_batch(a:next(), want[1], "rewound")
  -- state round-trips through strings, as a checkpoint's metadata does
  local c = skd.data.loader(ds, opts)
  c:set_state({epoch = math.tointeger(tonumber(tostring(s.epoch))), position = tonumber(tostring(s.position))})
  same_batch(c:next(), want[1], "from strings")
  T.raises(function() c:set_state({epoch = 1, position = 11}) end, "out of range")
  T.raises(function() c:set_state({epoch = 1}) end, "set_state expects")
end)

T.test("errors on the worker thread reach the caller, naming the file", function()
  local dir = os.tmpname()
  os.remove(dir)
  skd.mkdir(dir .. "/train")
  skd.mkdir(dir .. "/trainannot")
  for k = 1, 4 do
    skd._png_write(string.format("%s/train/%d.png", dir, k), skd.rand(3, 6, 8))
    skd._png_write(string.format("%s/trainannot/%d.png", dir, k), skd.zeros(6, 8, int))
  end
  skd.write_file(dir .. "/train/3.png", "garbage")
  local cv = skd.data.camvid{root = dir, split = "train"}
  local ld = skd.data.loader(cv, {batch = 2, prefetch = true})
  local b = ld:next()
  T.eq(#b.index, 2)
  T.raises(function() ld:next() end, "train/3.png")
  T.raises(function() ld:next() end, "train/3.png") -- the failed batch stays failed
  T.eq(ld:state().position, 2, "a failed batch does not advance the loader")
  -- images of different sizes cannot share a batch without a crop
  skd._png_write(dir .. "/train/3.png", skd.rand(3, 6, 8))
  skd._png_write(dir .. "/train/4.png", skd.rand(3, 7, 8))
  skd._png_write(dir .. "/trainannot/4.png", skd.zeros(7, 8, int))
  local mixed = skd.data.loader(skd.data.camvid{root = dir, split = "train"}, {batch = 4})
  T.raises(function() mixed:next() end, "sample 4 is 3x7x8", "crop size")
  local cropped = skd.data.loader(skd.data.camvid{root = dir, split = "train"}, {batch = 4, crop = {6, 8}})
  T.eq(cropped:next().image:size(1), 4)
  os.execute("rm -rf '" .. dir .. "'")
end)

T.test("a Lua table dataset loads on the calling thread", function()
  local luads = {num_classes = 3}
  setmetatable(luads, {
    __len = function() return 5 end,
    __index = function(_, i)
      return {image = skd.full({3, 4, 4}, i / 10), label = skd.full({4, 4}, i % 3, int)}
    end})
  local ld = skd.data.loader(luads, {batch = 2, prefetch = true})
  local b = ld:next()
  T.near(b.image:select(1, 2), 0.2, 1e-7)
  T.eq(b.label:get(1, 1, 1), 1)
  local n = 1
  for _ in ld do n = n + 1 end
  T.eq(n, 3)
  local broken = setmetatable({}, {__len = function() return 2 end,
                                   __index = function() error("no sample here") end})
  T.raises(function() skd.data.loader(broken, {batch = 1}):next() end, "sample 1", "no sample here")
end)

T.test("shutdown: close, <close>, garbage collection with a batch in flight", function()
  do
    local ld <close> = skd.data.loader(ds, {batch = 2, transform = aug})
    ld:next() -- the worker is now building the next batch
  end
  local ld = skd.data.loader(ds, {batch = 2})
  ld:next()
  ld:close()
  T.raises(function() ld:next() end, "closed")
  for _ = 1, 5 do skd.data.loader(ds, {batch = 4, transform = aug}):next() end
  collectgarbage()
  collectgarbage()
  T.raises(function() skd.data.loader(ds, {batch = 11, drop_last = true}) end, "too few")
  T.raises(function() skd.data.loader(ds, {batch = 0}) end, "batch must be at least 1")
  T.raises(function() skd.data.loader(ds, {seed = 1.5}) end, "seed")
end)

-- The worker builds the next batch while the caller's step runs. The step here sleeps (so
-- the measurement does not depend on how busy the shared machine's cores are): with
-- prefetch the caller should wait only for the first batch.
T.test("prefetch overlaps loading with the step", function()
  local big = skd.data.synthetic{split = "train", n = 24, size = {128, 256}, seed = 2}
  local function run(prefetch)
    local ld = skd.data.loader(big, {batch = 4, seed = 1, transform = aug, prefetch = prefetch})
    local t0, wait, sum = skd.clock(), 0, 0
    for _ = 1, 6 do
      local t1 = skd.clock()
      local b = ld:next()
      wait = wait + skd.clock() - t1
      sum = sum + b.image:sum():item()
      os.execute("sleep 0.1") -- the "training step"
    end
    ld:close()
    return skd.clock() - t0, wait, sum
  end
  local t_off, wait_off, s_off = run(false)
  local t_on, wait_on, s_on = run(true)
  print(string.format("  6 batches of 4 at 128x256, 100 ms steps: %.0f ms without prefetch "
    .. "(%.0f ms waiting for data), %.0f ms with (%.0f ms waiting)", t_off * 1e3, wait_off * 1e3,
    t_on * 1e3, wait_on * 1e3))
  T.eq(s_on, s_off)
  T.ok(wait_on < wait_off, "prefetch shortens the wait for data")
end)

T.done()
