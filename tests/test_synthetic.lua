-- The embedded synthetic street scenes: deterministic bytes, sane class statistics (printed
-- beside CamVid's), colours that do not give the classes away, generation speed.
local T = require "harness"

local int = {dtype = "int32"}
local camvid_train_share = { -- README of the CamVid copy: share of all pixels, train split
  16.75, 23.23, 0.98, 31.79, 4.48, 9.71, 1.17, 1.13, 5.86, 0.64, 0.29, void = 3.96}

local function same(a, b) return T.maxdiff(a, b) == 0 end

T.test("a sample is its (seed, split, index, size): same bytes every time", function()
  local a = skd.data.synthetic{split = "train", n = 8, size = {60, 80}, seed = 3}
  local b = skd.data.synthetic{split = "train", n = 8, size = {60, 80}, seed = 3}
  local late = a[7] -- made after nothing else in a
  for i = 1, 6 do local _ = a[i] end
  T.ok(same(a[7].image, late.image) and same(a[7].label, late.label), "order does not matter")
  for i = 1, 8 do
    local x, y = a[i], b[i]
    T.ok(same(x.image, y.image), "image " .. i)
    T.ok(same(x.label, y.label), "label " .. i)
  end
end)

T.test("index, split and seed each change the scene", function()
  local tr = skd.data.synthetic{split = "train", n = 4, size = {60, 80}, seed = 3}
  local va = skd.data.synthetic{split = "val", n = 4, size = {60, 80}, seed = 3}
  local other = skd.data.synthetic{split = "train", n = 4, size = {60, 80}, seed = 4}
  T.ok(not same(tr[1].image, tr[2].image), "index")
  T.ok(not same(tr[1].image, va[1].image) and not same(tr[1].label, va[1].label), "split")
  T.ok(not same(tr[1].image, other[1].image), "seed")
end)

T.test("shapes, types and value ranges; any size", function()
  local ds = skd.data.synthetic{split = "val", n = 3, size = {37, 53}}
  T.eq(#ds, 3)
  T.eq(ds.num_classes, 11)
  T.eq(ds.classes[1], "Sky"); T.eq(ds.classes[11], "Bicyclist")
  T.eq(ds.palette[4][1], 128); T.eq(ds.palette[4][2], 64); T.eq(ds.palette[4][3], 128) -- Road
  local s = ds[2]
  local sz = s.image:size()
  T.eq(sz[1], 3); T.eq(sz[2], 37); T.eq(sz[3], 53)
  T.eq(s.label:dtype(), "int32")
  T.eq(s.index, 2)
  T.ok(s.image:max():item() <= 1 and (-s.image):max():item() <= 0, "image in [0, 1]")
  -- every label value is a class id or 255 (the confusion matrix refuses anything else)
  skd.metrics.confusion(11):add(s.label, s.label)
  -- 8-bit like a camera: values are multiples of 1/255
  local v = s.image:get(1, 5, 7) * 255
  T.near(v, math.floor(v + 0.5), 1e-4)
  T.eq(#skd.data.synthetic{}, 367)
  T.eq(#skd.data.synthetic{split = "val"}, 101)
  T.raises(function() return skd.data.synthetic{split = "dev"} end, "split")
  T.raises(function() return skd.data.synthetic{size = {4, 4}} end, "size")
  T.raises(function() return skd.data.synthetic{size = {40.5, 40}} end, "size must be two integers")
  T.raises(function() return skd.data.synthetic{n = 2.5} end, "n must be an integer")
  T.raises(function() return skd.data.synthetic{n = 0} end, "n must be at least 1")
  T.raises(function() return ds[4] end, "index 4 out of range (1..3)")
end)

T.test("class statistics over 50 scenes at 96x128 look like CamVid's", function()
  local ds = skd.data.synthetic{split = "train", n = 50, size = {96, 128}}
  local all = skd.metrics.confusion(11)
  local present = {}
  for c = 1, 11 do present[c] = 0 end
  for i = 1, #ds do
    local lab = ds[i].label
    local cm = skd.metrics.confusion(11):add(lab, lab)
    for c = 1, 11 do if cm:count(c, c) > 0 then present[c] = present[c] + 1 end end
    all:merge(cm)
  end
  local pixels = 50 * 96 * 128
  local share = {}
  print(string.format("  %-11s %8s %8s %14s", "class", "share", "CamVid", "in scenes"))
  for c = 1, 11 do
    share[c] = 100 * all:count(c, c) / pixels
    print(string.format("  %-11s %7.2f%% %7.2f%% %8d of 50", ds.classes[c], share[c], camvid_train_share[c], present[c]))
  end
  local void = 100 * (pixels - all:total()) / pixels
  print(string.format("  %-11s %7.2f%% %7.2f%%", "void", void, camvid_train_share.void))
  for c = 1, 11 do T.ok(share[c] > 0, ds.classes[c] .. " appears") end
  -- road, building and sky are among the four largest classes
  local order = {}
  for c = 1, 11 do order[c] = c end
  table.sort(order, function(a, b) return share[a] > share[b] end)
  local top = {}
  for k = 1, 4 do top[order[k]] = true end
  T.ok(top[4] and top[2] and top[1], "road, building, sky among the largest")
  -- thin classes: present in most scenes, but small
  for _, c in ipairs({3, 7, 8, 10, 11}) do -- pole, sign, fence, pedestrian, bicyclist
    T.ok(share[c] > 0.05 and share[c] < 3, ds.classes[c] .. " is thin: " .. share[c] .. "%")
  end
  T.ok(present[3] >= 45 and present[7] >= 40 and present[10] >= 30, "thin classes occur in most scenes")
  T.ok(void > 0.5 and void < 10, "some void, not too much: " .. void .. "%")
end)

-- A classifier that looks only at a pixel's colour: the majority class of each of 4096 RGB
-- bins, fitted on train scenes, scored on val scenes. If classes had colours of their own it
-- would be near perfect. (Fitted and scored on the same 10 CamVid images it reaches 23% mIoU.)
T.test("colour alone does not give the classes away", function()
  local q = 16
  local function bin(img, y, x)
    return math.floor(img[1][y][x] * (q - 0.001)) * q * q + math.floor(img[2][y][x] * (q - 0.001)) * q +
           math.floor(img[3][y][x] * (q - 0.001))
  end
  local hist = {}
  local train = skd.data.synthetic{split = "train", n = 40, size = {48, 64}, seed = 9}
  for i = 1, #train do
    local s = train[i]
    local img, lab = s.image:totable(), s.label:totable()
    for y = 1, #lab do for x = 1, #lab[1] do
      local l = lab[y][x]
      if l ~= 255 then
        local k = bin(img, y, x)
        local h = hist[k] or {}
        hist[k] = h
        h[l] = (h[l] or 0) + 1
      end
    end end
  end
  local best = {}
  for k, h in pairs(hist) do
    local bc, bn = 0, -1
    for c, m in pairs(h) do if m > bn or (m == bn and c < bc) then bc, bn = c, m end end
    best[k] = bc
  end
  local val = skd.data.synthetic{split = "val", n = 20, size = {48, 64}, seed = 9}
  local cm = skd.metrics.confusion(11)
  for i = 1, #val do
    local s = val[i]
    local img, lab = s.image:totable(), s.label:totable()
    local pred = {}
    for y = 1, #lab do
      pred[y] = {}
      for x = 1, #lab[1] do pred[y][x] = best[bin(img, y, x)] or 0 end
    end
    cm:add(skd.tensor(pred, int), s.label)
  end
  print(cm:table(val.classes))
  T.ok(cm:miou() < 0.35, "colour lookup mIoU " .. cm:miou())
  local iou = cm:iou()
  for _, c in ipairs({3, 7, 8, 10, 11}) do
    T.ok(iou[c] < 0.25, val.classes[c] .. " by colour alone: IoU " .. iou[c])
  end
end)

T.test("generation speed at 128x256", function()
  local ds = skd.data.synthetic{split = "train", n = 40, size = {128, 256}}
  local t0 = skd.clock()
  for i = 1, #ds do local _ = ds[i] end
  local rate = #ds / (skd.clock() - t0)
  print(string.format("  %.1f images/s at 128x256 (one thread)", rate))
  T.ok(rate > (os.getenv("SKD_SAN") and 0.5 or 5), "generation is not pathologically slow")
end)

T.done()
