-- skd.data — datasets, augmentation and the batch loader (the pixels are handled in C:
-- core/synthetic.c, dataset.c, augment.c, loader.c; this file gives them their Lua shape).
--
--   local ds = skd.data.synthetic{split = "train", n = 367, size = {180, 240}, seed = 0}
--   #ds, ds[i] -> {image = 3xHxW float in [0,1], label = HxW int32, index = i}
--   ds.classes, ds.palette, ds.num_classes
--   local tf = skd.data.transform{scale = {0.5, 2.0}, crop = {h, w}, flip = true,
--                                 mean = {..}, std = {..}}
--   local ld = skd.data.loader(ds, {batch = 8, shuffle = true, seed = 1, transform = tf,
--                                   drop_last = true, prefetch = true})
--   for batch in ld do ... end         -- one epoch: {image = Bx3xHxW, label = BxHxW, index = {..}}
--   ld:next()                          -- the next batch, rolling over into the next epoch
--   ld:state() -> {epoch =, position =}; ld:set_state(s) resumes exactly there.
--   skd.data.class_weights(ds, {samples = 200}) -> C-vector for cross_entropy's weight, frequencies
local data = {}

data.camvid_classes = {"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                       "Fence", "Car", "Pedestrian", "Bicyclist"}
-- ImageNet statistics, the usual normalisation for ImageNet-initialised backbones.
data.imagenet_mean = {0.485, 0.456, 0.406}
data.imagenet_std = {0.229, 0.224, 0.225}

local function opt_table(op, opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(op .. ": options must be a table, got " .. type(opts), 3) end
  return opts
end

-- ---------------------------------------------------------------- datasets

local Dataset = {}

function Dataset.__index(self, k)
  if type(k) == "number" then return Dataset.get(self, k) end
  return Dataset[k]
end

function Dataset.__len(self) return self.n end

function Dataset.__tostring(self)
  return string.format("skd.data.%s (%s%d samples, %d classes)", self.name,
    self.split and (self.split .. ", ") or "", self.n, self.num_classes)
end

-- ds[i] / ds:get(i): the i-th sample (1-based).
function Dataset:get(i)
  if math.type(i) ~= "integer" then
    error(self.name .. ": index must be an integer, got " .. tostring(i), 2)
  end
  if i < 1 or i > self.n then
    error(string.format("%s: index %d out of range (1..%d)", self.name, i, self.n), 2)
  end
  local image, label = self.handle:get(i)
  return {image = image, label = label, index = i}
end

-- The files of sample i (nil for generated samples).
function Dataset:paths(i) return self.handle:paths(i) end

local function wrap(handle, name, split)
  local classes = handle:classes()
  return setmetatable({handle = handle, name = name, split = split, n = #handle,
                       classes = classes, num_classes = #classes,
                       palette = handle:palette()}, Dataset)
end

local default_n = {train = 367, val = 101, test = 233} -- CamVid's split sizes

function data.synthetic(opts)
  opts = opt_table("synthetic", opts)
  local split = opts.split or "train"
  local size = opts.size or {180, 240}
  if type(size) ~= "table" or math.type(size[1]) ~= "integer" or math.type(size[2]) ~= "integer" then
    error("synthetic: size must be two integers {h, w}, got " .. tostring(size), 2)
  end
  local n = opts.n or default_n[split]
  if not n then error("synthetic: split must be \"train\", \"val\" or \"test\", got \"" .. tostring(split) .. "\"", 2) end
  if math.type(n) ~= "integer" then error("synthetic: n must be an integer, got " .. tostring(n), 2) end
  if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
    error("synthetic: seed must be an integer, got " .. tostring(opts.seed), 2)
  end
  local h = skd._dataset_synthetic(opts.seed or 0, split, n, size[1], size[2])
  local ds = wrap(h, "synthetic", split)
  ds.size = {size[1], size[2]}
  return ds
end

local function need_root(op, opts)
  opts = opt_table(op, opts)
  if type(opts.root) ~= "string" then error(op .. ": root (the dataset's folder) is required", 3) end
  return opts
end

-- SegNet's CamVid layout: <root>/<split> and <root>/<split>annot; label 11 (void) -> 255.
function data.camvid(opts)
  opts = need_root("camvid", opts)
  local split = opts.split or "train"
  return wrap(skd._dataset_camvid(opts.root, split), "camvid", split)
end

-- leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine/<split>/<city>/*_gtFine_labelIds.png,
-- label ids mapped to the 19 train ids (others 255).
function data.cityscapes(opts)
  opts = need_root("cityscapes", opts)
  local split = opts.split or "train"
  return wrap(skd._dataset_cityscapes(opts.root, split), "cityscapes", split)
end

-- A list file of "image_path label_path" lines (relative to the list's folder).
-- opts: classes = {names} or num_classes = C (default: the 11 CamVid classes);
-- void = {values} mapped to 255 (255 itself is always ignore).
function data.folder(opts)
  opts = opt_table("folder", opts)
  if type(opts.list) ~= "string" then error("folder: list (the list file's path) is required", 2) end
  local names = opts.classes
  local n = opts.num_classes or (names and #names) or #data.camvid_classes
  if not names and not opts.num_classes then names = data.camvid_classes end
  return wrap(skd._dataset_folder(opts.list, n, names, opts.void), "folder")
end

-- Any table with #t and t[i] -> {image=, label=} becomes loadable (on the calling thread).
local function as_handle(ds)
  if type(ds) == "table" and rawget(ds, "handle") then return rawget(ds, "handle") end
  if type(ds) == "userdata" then return ds end -- a handle itself (the C side checks it)
  local n = #ds
  local classes = rawget(ds, "classes")
  local nc = rawget(ds, "num_classes") or (classes and #classes) or 1
  return skd._dataset_lua(n, nc, function(i)
    local s = ds[i]
    return s.image, s.label
  end)
end

-- Class weights against imbalance: median-frequency balancing (Eigen & Fergus 2015; SegNet's
-- CamVid recipe). f_c = pixels of class c / pixels of the images in which c appears, and
-- a_c = median(f) / f_c over the classes that appear; a class absent from the scanned samples
-- gets 0 (it has no pixel to weigh). opts.samples: scan that many samples spread evenly over
-- the dataset (default all). Returns the weights as a float tensor and {f_1, ..., f_C}.
function data.class_weights(ds, opts)
  opts = opt_table("class_weights", opts)
  local n = #ds
  local C = rawget(ds, "num_classes")
  if math.type(C) ~= "integer" or n < 1 then
    error("class_weights: expects a non-empty dataset with num_classes (skd.data.*), got " .. tostring(ds), 2)
  end
  local m = opts.samples or n
  if math.type(m) ~= "integer" or m < 1 then
    error("class_weights: samples must be a positive integer, got " .. tostring(opts.samples), 2)
  end
  m = math.min(m, n)
  local pixels, present = {}, {}
  for c = 1, C do pixels[c], present[c] = 0, 0 end
  local cm = skd._confusion(C, opts.ignore_index or 255)
  for k = 0, m - 1 do
    local label = ds[1 + (k * n) // m].label
    cm:reset()
    cm:add(label:unsqueeze(1), label:unsqueeze(1)) -- the diagonal counts each class's pixels
    local counts, total = {}, 0
    for c = 1, C do counts[c] = cm:count(c, c); total = total + counts[c] end
    for c = 1, C do
      if counts[c] > 0 then
        pixels[c] = pixels[c] + counts[c]
        present[c] = present[c] + total
      end
    end
  end
  local freq, seen = {}, {}
  for c = 1, C do
    freq[c] = present[c] > 0 and pixels[c] / present[c] or 0
    if freq[c] > 0 then seen[#seen + 1] = freq[c] end
  end
  if #seen == 0 then error("class_weights: no labelled pixel in " .. m .. " samples", 2) end
  table.sort(seen)
  local h = #seen // 2
  local median = #seen % 2 == 1 and seen[h + 1] or (seen[h] + seen[h + 1]) / 2
  local w = {}
  for c = 1, C do w[c] = freq[c] > 0 and median / freq[c] or 0 end
  return skd.tensor(w), freq
end

-- ---------------------------------------------------------------- augmentation

local Transform = {}
Transform.__index = Transform

local transform_keys = {scale = true, crop = true, flip = true, mean = true, std = true}

-- Training: transform{scale = {0.5, 2.0}, crop = {h, w}, flip = true, mean =, std =};
-- validation: transform{mean =, std =} (normalise only). Means and stds are in [0, 1]
-- pixel units; the crop's padding is the mean (0 without one) and label 255.
function data.transform(opts)
  opts = opt_table("transform", opts)
  local t = {}
  for k, v in pairs(opts) do
    if not transform_keys[k] then error("transform: unknown option '" .. tostring(k) .. "'", 2) end
    t[k] = v
  end
  if type(t.crop) == "number" then t.crop = {t.crop, t.crop} end
  -- checked now (by applying it to a 1x1 sample) rather than at the first batch
  skd._transform_apply(skd.zeros(3, 1, 1), skd.zeros(1, 1, {dtype = "int32"}), t, 0)
  return setmetatable(t, Transform)
end

-- tf(sample [, seed]) -> a new sample; the seed decides scale, crop and flip.
function Transform.__call(self, sample, seed)
  local image, label = skd._transform_apply(sample.image, sample.label, self, seed or 0)
  return {image = image, label = label, index = sample.index}
end

-- ---------------------------------------------------------------- the loader

local Loader = {}
Loader.__index = Loader

-- loader(ds, {batch=1, shuffle=false, seed=<from skd.manual_seed>, transform=tf|{..},
--             drop_last=false, prefetch=true}); transform options may also be given directly.
function data.loader(ds, opts)
  opts = opt_table("loader", opts)
  local tf = opts.transform
  if tf == nil then
    for k in pairs(transform_keys) do
      if opts[k] ~= nil then tf = tf or {}; tf[k] = opts[k] end
    end
  end
  if tf ~= nil and getmetatable(tf) ~= Transform then tf = data.transform(tf) end
  local handle = as_handle(ds)
  local c = {batch = opts.batch or 1, shuffle = opts.shuffle or false, seed = opts.seed,
             drop_last = opts.drop_last or false, transform = tf}
  if opts.prefetch ~= nil then c.prefetch = opts.prefetch end
  local h = skd._loader_new(handle, c)
  return setmetatable({handle = h, dataset = ds, batch = c.batch, transform = tf}, Loader)
end

-- for batch in loader do ... end: the rest of the current epoch; the loader then stands at
-- the start of the next one.
function Loader.__call(self) return self.handle:next(false) end

function Loader:epoch()
  return function() return self.handle:next(false) end
end

function Loader:next() return self.handle:next(true) end

-- Batches per epoch.
function Loader.__len(self) return self.handle:batches() end

function Loader:state()
  local e, p = self.handle:state()
  return {epoch = e, position = p}
end

function Loader:set_state(s)
  if type(s) ~= "table" or math.type(s.epoch) ~= "integer" or math.type(s.position) ~= "integer" then
    error("loader: set_state expects {epoch = integer, position = integer}", 2)
  end
  self.handle:set_state(s.epoch, s.position)
end

-- Stops the prefetch worker now (the collector would do it later).
function Loader:close() self.handle:close() end
Loader.__close = Loader.close

function Loader.__tostring(self)
  local s = self:state()
  return string.format("skd.data.loader (batch %d, %d batches per epoch, epoch %d, position %d)",
    self.batch, #self, s.epoch, s.position)
end

return data
