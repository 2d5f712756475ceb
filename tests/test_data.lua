-- Datasets on disk (CamVid, a Cityscapes-layout tree, a folder list), their errors, and the
-- augmentation: image and label stay aligned under scale, crop and flip.
local T = require "harness"

local int = {dtype = "int32"}
local script = debug.getinfo(1, "S").source:sub(2)
local repo = script:match("^(.*)/tests/[^/]*$") or "."
local shared = os.getenv("SKD_SHARED") or (repo .. "/../shared")
local camvid_root = shared .. "/data/camvid/180x240"

local tmp = os.tmpname()
os.remove(tmp)
skd.mkdir(tmp)

-- An image whose colours encode their own coordinates (R = x, G = y, B = 0.5 marks "real")
-- and a label of 8x8 blocks, f(x, y) = (x // 8 + 3 * (y // 8)) % 11 (0-based x, y).
local function block_label(x, y) return (x // 8 + 3 * (y // 8)) % 11 end
local function coordinate_sample(H, W)
  local img, lab = {{}, {}, {}}, {}
  for y = 0, H - 1 do
    img[1][y + 1], img[2][y + 1], img[3][y + 1], lab[y + 1] = {}, {}, {}, {}
    for x = 0, W - 1 do
      img[1][y + 1][x + 1] = x / (W - 1)
      img[2][y + 1][x + 1] = y / (H - 1)
      img[3][y + 1][x + 1] = 0.5
      lab[y + 1][x + 1] = block_label(x, y)
    end
  end
  return {image = skd.tensor(img), label = skd.tensor(lab, int)}
end

-- ---------------------------------------------------------------- CamVid (the real copy)

local function camvid_present()
  return skd.exists(camvid_root .. "/train") and skd.exists(camvid_root .. "/valannot")
end

if not camvid_present() then
  T.skip("CamVid 180x240", "not found at " .. camvid_root .. " (set SKD_SHARED to the shared folder)")
else
  T.test("CamVid: split sizes, sample sizes, labels, void mapping", function()
    local tr = skd.data.camvid{root = camvid_root, split = "train"}
    local va = skd.data.camvid{root = camvid_root, split = "val"}
    T.eq(#tr, 367); T.eq(#va, 101)
    T.eq(tr.num_classes, 11); T.eq(tr.classes[4], "Road")
    local s = tr[1]
    local sz = s.image:size()
    T.eq(sz[1], 3); T.eq(sz[2], 180); T.eq(sz[3], 240)
    T.eq(s.label:size(1), 180); T.eq(s.label:size(2), 240)
    -- raw value 11 (Unlabelled) becomes 255, everything else is kept
    local img_path, lab_path = tr:paths(1)
    T.ok(img_path:find("/train/", 1, true) and lab_path:find("/trainannot/", 1, true), lab_path)
    local raw, got = skd._png_read(lab_path):totable(), s.label:totable()
    local elevens = 0
    for y = 1, 180 do for x = 1, 240 do
      local want = raw[y][x] == 11 and 255 or raw[y][x]
      if raw[y][x] == 11 then elevens = elevens + 1 end
      if got[y][x] ~= want then error(string.format("pixel %d,%d: raw %d, label %d", y, x, raw[y][x], got[y][x])) end
    end end
    T.ok(elevens > 0, "the first training label has void pixels")
  end)

  T.test("CamVid val: per-class pixel counts equal the README's", function()
    local va = skd.data.camvid{root = camvid_root, split = "val"}
    local cm = skd.metrics.confusion(11)
    local t0 = skd.clock()
    for i = 1, #va do
      local lab = va[i].label
      cm:add(lab, lab) -- also checks every value is 0..10 or 255
    end
    print(string.format("  loaded %d CamVid samples at %.0f samples/s", #va, #va / (skd.clock() - t0)))
    local readme = {398283, 1128455, 24608, 1269605, 380337, 712482, 38813, 134859, 76359, 28314, 96668}
    for c = 1, 11 do T.eq(cm:count(c, c), readme[c], va.classes[c]) end
    T.eq(101 * 180 * 240 - cm:total(), 74417, "void pixels")
  end)
end

-- ---------------------------------------------------------------- a Cityscapes tree

-- labels.py of cityscapesScripts: label id -> train id
local cityscapes_train_id = {[0] = 255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255,
  255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18}

local function write_cityscapes(root, cities)
  for city, stems in pairs(cities) do
    skd.mkdir(root .. "/leftImg8bit/train/" .. city)
    skd.mkdir(root .. "/gtFine/train/" .. city)
    for k, stem in ipairs(stems) do
      local img = skd.full({3, 6, 6}, k / 255)
      local lab = {}
      for y = 1, 6 do
        lab[y] = {}
        for x = 1, 6 do lab[y][x] = ((y - 1) * 6 + (x - 1) + k) % 34 end
      end
      skd._png_write(root .. "/leftImg8bit/train/" .. city .. "/" .. stem .. "_leftImg8bit.png", img)
      skd._png_write(root .. "/gtFine/train/" .. city .. "/" .. stem .. "_gtFine_labelIds.png", skd.tensor(lab, int))
    end
  end
end

T.test("Cityscapes layout: discovery, pairing, 34 -> 19 train ids", function()
  local root = tmp .. "/cityscapes"
  write_cityscapes(root, {bremen = {"bremen_000001_000019", "bremen_000000_000019"},
                          aachen = {"aachen_000000_000019"}})
  local ds = skd.data.cityscapes{root = root, split = "train"}
  T.eq(#ds, 3)
  T.eq(ds.num_classes, 19); T.eq(ds.classes[1], "road"); T.eq(ds.classes[19], "bicycle")
  -- sorted by city, then by file name
  local p1 = ds:paths(1)
  local p2 = ds:paths(2)
  T.ok(p1:find("aachen_000000", 1, true) and p2:find("bremen_000000", 1, true), p1 .. " " .. p2)
  local s = ds[2] -- bremen_000000: written second, with k = 2
  T.near(s.image:get(2, 3, 4), 2 / 255, 1e-7)
  local got = s.label:totable()
  for y = 1, 6 do for x = 1, 6 do
    local id = ((y - 1) * 6 + (x - 1) + 2) % 34
    T.eq(got[y][x], cityscapes_train_id[id], "label id " .. id)
  end end
end)

T.test("Cityscapes errors: missing folder, missing label, value outside the ids", function()
  T.raises(function() return skd.data.cityscapes{root = tmp .. "/nowhere", split = "train"} end,
    "cannot open folder", "nowhere/leftImg8bit/train")
  local root = tmp .. "/cs_bad"
  write_cityscapes(root, {ulm = {"ulm_000000_000019"}})
  skd._png_write(root .. "/leftImg8bit/train/ulm/ulm_000001_000019_leftImg8bit.png", skd.zeros(3, 6, 6))
  T.raises(function() return skd.data.cityscapes{root = root, split = "train"} end,
    "has no label", "ulm_000001_000019_gtFine_labelIds.png")
  local root2 = tmp .. "/cs_value"
  write_cityscapes(root2, {ulm = {"ulm_000000_000019"}})
  local lab = skd.zeros(6, 6, int)
  lab:set(40, 4, 2)
  skd._png_write(root2 .. "/gtFine/train/ulm/ulm_000000_000019_gtFine_labelIds.png", lab)
  local ds = skd.data.cityscapes{root = root2, split = "train"}
  T.raises(function() return ds[1] end, "value 40", "row 4, column 2", "ulm_000000_000019_gtFine_labelIds.png")
end)

-- ---------------------------------------------------------------- CamVid layout written here

local function write_pair(dir, name, H, W, labels)
  local lab = skd.zeros(H, W, int)
  for _, v in ipairs(labels or {}) do lab:set(v[3], v[1], v[2]) end
  skd._png_write(dir .. "/" .. name, skd.rand(3, H, W))
  return lab
end

T.test("CamVid layout errors: missing folders, a missing label, size, value, corrupt PNG", function()
  local root = tmp .. "/cv"
  T.raises(function() return skd.data.camvid{root = root, split = "train"} end, "cannot open folder", root .. "/train")
  skd.mkdir(root .. "/train")
  write_pair(root .. "/train", "a.png", 4, 5)
  T.raises(function() return skd.data.camvid{root = root, split = "train"} end, "label folder", "trainannot", "missing")
  skd.mkdir(root .. "/val")
  skd.mkdir(root .. "/valannot")
  T.raises(function() return skd.data.camvid{root = root, split = "val"} end, "no images found", root .. "/val")
  skd.mkdir(root .. "/trainannot")
  skd._png_write(root .. "/trainannot/a.png", skd.zeros(4, 5, int))
  write_pair(root .. "/train", "b.png", 4, 5)
  T.raises(function() return skd.data.camvid{root = root, split = "train"} end, "has no label", "trainannot/b.png")
  -- b's label: wrong size
  skd._png_write(root .. "/trainannot/b.png", skd.zeros(4, 6, int))
  -- c's label: value 12 at row 2, column 3
  write_pair(root .. "/train", "c.png", 4, 5)
  local bad = skd.zeros(4, 5, int); bad:set(12, 2, 3)
  skd._png_write(root .. "/trainannot/c.png", bad)
  -- d: a corrupt image; e: a colour label
  skd.write_file(root .. "/train/d.png", "this is not a PNG file")
  skd._png_write(root .. "/trainannot/d.png", skd.zeros(4, 5, int))
  write_pair(root .. "/train", "e.png", 4, 5)
  skd._png_write(root .. "/trainannot/e.png", skd.zeros(3, 4, 5))
  local ds = skd.data.camvid{root = root, split = "train"}
  T.eq(#ds, 5)
  local _ = ds[1] -- a is fine
  T.raises(function() return ds[2] end, "size mismatch", "train/b.png", "4x5", "trainannot/b.png", "4x6")
  T.raises(function() return ds[3] end, "value 12", "row 2, column 3", "trainannot/c.png", "0..10, 11 = void")
  T.raises(function() return ds[4] end, "train/d.png", "png")
  T.raises(function() return ds[5] end, "trainannot/e.png", "colour image")
  T.raises(function() return ds[6] end, "index 6 out of range (1..5)")
end)

-- ---------------------------------------------------------------- folder lists

T.test("folder list: relative and absolute paths, comments, classes, void values", function()
  local dir = tmp .. "/fl"
  skd.mkdir(dir .. "/imgs")
  local H, W = 3, 4
  local want = {}
  for k = 1, 3 do
    local img = skd.full({3, H, W}, (10 * k) / 255)
    img:set(200 / 255, 1, 2, 3)
    local lab = skd.full({H, W}, k - 1, int)
    lab:set(7, 3, 4) -- void value
    lab:set(255, 1, 1)
    skd._png_write(dir .. "/imgs/" .. k .. ".png", img)
    skd._png_write(dir .. "/imgs/" .. k .. "_l.png", lab)
    want[k] = {img = img, lab = lab}
  end
  skd.write_file(dir .. "/list.txt", "# image label\n\nimgs/1.png imgs/1_l.png\n" ..
    dir .. "/imgs/2.png\timgs/2_l.png\r\n   imgs/3.png   imgs/3_l.png\n")
  local ds = skd.data.folder{list = dir .. "/list.txt", classes = {"a", "b", "c"}, void = {7}}
  T.eq(#ds, 3); T.eq(ds.num_classes, 3); T.eq(ds.classes[3], "c")
  for k = 1, 3 do
    local s = ds[k]
    T.near(s.image, want[k].img, 1e-7)
    T.eq(s.label:get(3, 4), 255, "void value 7 -> 255")
    T.eq(s.label:get(1, 1), 255, "255 stays ignore")
    T.eq(s.label:get(2, 2), k - 1)
  end
  -- without void = {7}, 7 is outside a 3-class list
  local strict = skd.data.folder{list = dir .. "/list.txt", num_classes = 3}
  T.raises(function() return strict[1] end, "value 7", "row 3, column 4", "0..2, 255 = ignore")
  -- default classes: CamVid's eleven
  T.eq(skd.data.folder{list = dir .. "/list.txt"}.classes[1], "Sky")
end)

T.test("folder list errors: missing list, malformed line, missing image or label", function()
  local dir = tmp .. "/fl_bad"
  skd.mkdir(dir)
  T.raises(function() return skd.data.folder{list = dir .. "/none.txt"} end, "cannot open list file", "none.txt")
  write_pair(dir, "x.png", 2, 2)
  skd._png_write(dir .. "/x_l.png", skd.zeros(2, 2, int))
  skd.write_file(dir .. "/l1.txt", "x.png x_l.png\nx.png\n")
  T.raises(function() return skd.data.folder{list = dir .. "/l1.txt"} end, "l1.txt' line 2", "expected 'image_path label_path'")
  skd.write_file(dir .. "/l2.txt", "x.png x_l.png\ny.png x_l.png\n")
  T.raises(function() return skd.data.folder{list = dir .. "/l2.txt"} end, "line 2", "image", "y.png' does not exist")
  skd.write_file(dir .. "/l3.txt", "x.png y_l.png\n")
  T.raises(function() return skd.data.folder{list = dir .. "/l3.txt"} end, "line 1", "has no label", "y_l.png")
  skd.write_file(dir .. "/l4.txt", "# nothing\n")
  T.raises(function() return skd.data.folder{list = dir .. "/l4.txt"} end, "no images found")
  T.raises(function() return skd.data.folder{} end, "list")
  T.raises(function() return skd.data.camvid{} end, "root")
end)

-- ---------------------------------------------------------------- augmentation

T.test("scale, crop and flip keep image and label aligned", function()
  local H, W = 40, 56
  local s = coordinate_sample(H, W)
  local tf = skd.data.transform{scale = {0.5, 2.0}, crop = {48, 48}, flip = true}
  local flipped, unflipped, sizes = 0, 0, {}
  for seed = 1, 8 do
    local o = tf(s, seed)
    T.eq(o.image:size(2), 48); T.eq(o.label:size(2), 48)
    local img, lab = o.image:totable(), o.label:totable()
    local real = 0
    for y = 1, 48 do for x = 1, 48 do
      local pad = img[3][y][x] == 0
      T.eq(lab[y][x] == 255, pad, "label 255 exactly on the padding")
      if not pad then
        real = real + 1
        local sx, sy = img[1][y][x] * (W - 1), img[2][y][x] * (H - 1)
        local ok = false
        for _, cx in ipairs({math.floor(sx - 1e-3), math.ceil(sx + 1e-3)}) do
          for _, cy in ipairs({math.floor(sy - 1e-3), math.ceil(sy + 1e-3)}) do
            if block_label(math.max(0, math.min(W - 1, cx)), math.max(0, math.min(H - 1, cy))) == lab[y][x] then ok = true end
          end
        end
        if not ok then
          error(string.format("seed %d, pixel %d,%d: image comes from (%.2f, %.2f), label %d", seed, y, x, sx, sy, lab[y][x]))
        end
      end
    end end
    sizes[real] = true
    -- which way does x run? (a flipped crop has R decreasing along the row)
    local row = 1
    while img[3][row][1] == 0 or img[3][row][2] == 0 do row = row + 1 end
    if img[1][row][2] < img[1][row][1] then flipped = flipped + 1 else unflipped = unflipped + 1 end
  end
  T.ok(flipped > 0 and unflipped > 0, "both flipped and unflipped crops among 8 seeds")
  local n = 0
  for _ in pairs(sizes) do n = n + 1 end
  T.ok(n > 3, "the scale varies with the seed")
end)

T.test("crop and flip without scaling move pixels exactly", function()
  local H, W = 30, 40
  local s = coordinate_sample(H, W)
  local tf = skd.data.transform{crop = {20, 24}, flip = true}
  for seed = 1, 4 do
    local o = tf(s, seed)
    local img, lab = o.image:totable(), o.label:totable()
    for y = 1, 20 do for x = 1, 24 do
      local sx, sy = img[1][y][x] * (W - 1), img[2][y][x] * (H - 1)
      T.near(sx, math.floor(sx + 0.5), 1e-3)
      T.eq(lab[y][x], block_label(math.floor(sx + 0.5), math.floor(sy + 0.5)))
    end end
  end
  -- the same seed gives the same result; another seed another crop
  T.eq(T.maxdiff(tf(s, 3).image, tf(s, 3).image), 0)
  T.ok(T.maxdiff(tf(s, 3).image, tf(s, 4).image) > 0)
end)

T.test("normalisation, and padding with the mean", function()
  local s = {image = skd.rand(3, 5, 6), label = skd.zeros(5, 6, int)}
  local mean, std = {0.1, 0.2, 0.3}, {0.5, 0.5, 0.25}
  local o = skd.data.transform{mean = mean, std = std}(s)
  local want = (s.image - skd.tensor(mean):reshape(3, 1, 1)) / skd.tensor(std):reshape(3, 1, 1)
  T.near(o.image, want, 1e-6)
  T.near(o.label, s.label, 0)
  -- a crop larger than the image pads: normalised mean = 0, label 255
  local p = skd.data.transform{crop = {8, 6}, mean = mean, std = std}(s, 1)
  T.eq(p.image:size(2), 8)
  T.near(p.image:narrow(2, 6, 3), 0, 1e-6)
  T.near(p.label:narrow(1, 6, 3), 255, 0)
  T.near(p.image:narrow(2, 1, 5), want, 1e-6)
end)

T.test("transform options are checked", function()
  T.raises(function() skd.data.transform{scale = {2, 1}} end, "scale")
  T.raises(function() skd.data.transform{crop = {0, 5}} end, "crop")
  T.raises(function() skd.data.transform{std = {1, 0, 1}} end, "std")
  T.raises(function() skd.data.transform{sclae = {1, 2}} end, "unknown option 'sclae'")
  T.raises(function() skd.data.transform{mean = {1, 2}} end, "mean", "3 numbers")
  local tf = skd.data.transform{}
  T.raises(function() tf({image = skd.rand(4, 5, 5), label = skd.zeros(5, 5, int)}) end, "3xHxW")
  T.raises(function() tf({image = skd.rand(3, 5, 5), label = skd.zeros(5, 4, int)}) end, "label", "image's size")
end)

T.test("class_weights: median-frequency balancing by hand", function()
  -- two 2x2 images, 3 classes. Class 1: 3 pixels in images of 3 + 4 labelled pixels (f 3/7);
  -- class 2: 1 pixel in an image of 3 (f 1/3); class 3: 3 of 4 (f 3/4). The median f is 3/7.
  local function lab(t) return skd.tensor(t, {dtype = "int32"}) end
  local ds = {num_classes = 3,
              {image = skd.zeros(3, 2, 2), label = lab({{0, 0}, {1, 255}})},
              {image = skd.zeros(3, 2, 2), label = lab({{0, 2}, {2, 2}})}}
  local w, f = skd.data.class_weights(ds)
  T.near(f, {3 / 7, 1 / 3, 3 / 4}, 1e-12)
  T.near(w, {1, 9 / 7, 4 / 7}, 1e-6)
  -- a class that never appears weighs 0; only appearing classes enter the median
  local w4 = skd.data.class_weights({num_classes = 4, ds[1], ds[2]})
  T.near(w4, {1, 9 / 7, 4 / 7, 0}, 1e-6)
  -- the synthetic default: rare classes (pole, sign, pedestrian, bicyclist) weigh > 1,
  -- sky, building and road < 1
  local syn = skd.data.synthetic{split = "train", n = 40, size = {48, 64}, seed = 3}
  local ws = skd.data.class_weights(syn, {samples = 20})
  for _, c in ipairs({3, 7, 10, 11}) do T.ok(ws:get(c) > 1, syn.classes[c] .. " weighs > 1") end
  for _, c in ipairs({1, 2, 4}) do T.ok(ws:get(c) < 1, syn.classes[c] .. " weighs < 1") end
  T.raises(function() skd.data.class_weights({num_classes = 2}) end, "class_weights", "non-empty")
  T.raises(function() skd.data.class_weights(ds, {samples = 0}) end, "class_weights", "samples")
  T.raises(function()
    skd.data.class_weights({num_classes = 2, {image = skd.zeros(3, 1, 1), label = lab({{255}})}})
  end, "class_weights", "no labelled pixel")
end)

os.execute("rm -rf '" .. tmp .. "'")
T.done()
