-- skd.metrics: the confusion matrix against hand-computed cases and a naive reference;
-- the mIoU rule (method.md §5, defined in core/metrics.h); errors by message.
local T = require "harness"
skd.manual_seed(4)
math.randomseed(4)

local int = {dtype = "int32"}
local NaN = 0 / 0
local function isnan(x) return x ~= x end

-- 3 classes, ignore 255. label / prediction, 2 images of 2x3:
--   label  0 0 1 | 2 2 255      pred  0 1 1 | 2 0 1
--          1 1 0 | 2 255 1            1 2 0 | 0 2 1
-- counted pairs (label -> pred): 0->0, 0->1, 1->1, 1->1, 1->2, 0->0 | 2->2, 2->0, 2->0, 1->1
-- matrix (rows label, cols pred):  0: [2 1 0]   1: [0 3 1]   2: [2 0 1]
local label = skd.tensor({{{0, 0, 1}, {1, 1, 0}}, {{2, 2, 255}, {2, 255, 1}}}, int)
local pred = skd.tensor({{{0, 1, 1}, {1, 2, 0}}, {{2, 0, 1}, {0, 2, 1}}}, int)
local want = {{2, 1, 0}, {0, 3, 1}, {2, 0, 1}}

T.test("confusion matrix of a hand-worked case", function()
  local cm = skd.metrics.confusion(3, {ignore_index = 255})
  cm:add(pred, label)
  for t = 1, 3 do for p = 1, 3 do T.eq(cm:count(t, p), want[t][p], "count " .. t .. "," .. p) end end
  T.near(cm:matrix(), want, 0)
  T.eq(cm:matrix():dtype(), "int32")
  T.eq(cm:total(), 10)
end)

T.test("IoU, mIoU and accuracies by hand", function()
  local cm = skd.metrics.confusion(3):add(pred, label)
  -- IoU_c = TP / (TP + FP + FN): class 0: 2/(2+2+1) = 0.4; class 1: 3/(3+1+1) = 0.6;
  -- class 2: 1/(1+1+2) = 0.25
  local iou = cm:iou()
  T.near(iou[1], 0.4, 1e-12); T.near(iou[2], 0.6, 1e-12); T.near(iou[3], 0.25, 1e-12)
  T.near(cm:miou(), (0.4 + 0.6 + 0.25) / 3, 1e-12)
  T.near(cm:pixel_accuracy(), 6 / 10, 1e-12)
  local acc = cm:class_accuracy() -- TP / (TP + FN): 2/3, 3/4, 1/3
  T.near(acc[1], 2 / 3, 1e-12); T.near(acc[2], 3 / 4, 1e-12); T.near(acc[3], 1 / 3, 1e-12)
  T.near(cm:mean_class_accuracy(), (2 / 3 + 3 / 4 + 1 / 3) / 3, 1e-12)
end)

T.test("a class in neither labels nor predictions has no IoU and is left out of the mIoU", function()
  local cm = skd.metrics.confusion(5):add(pred, label) -- classes 4 and 5 never occur
  local iou = cm:iou()
  T.ok(isnan(iou[4]) and isnan(iou[5]), "absent classes give NaN")
  T.near(cm:miou(), (0.4 + 0.6 + 0.25) / 3, 1e-12)
  -- a class only predicted (false positives) counts, with IoU 0
  local l = skd.tensor({{0, 0}}, int)
  local p = skd.tensor({{0, 1}}, int)
  local cm2 = skd.metrics.confusion(3):add(p, l)
  T.near(cm2:iou()[2], 0, 0)
  T.near(cm2:miou(), (0.5 + 0) / 2, 1e-12)
  T.ok(isnan(skd.metrics.confusion(3):miou()), "empty matrix: NaN mIoU")
end)

T.test("logits take the argmax over the class dimension (first maximum on ties)", function()
  local cm_ids = skd.metrics.confusion(3):add(pred, label)
  -- logits B x C x H x W whose argmax is pred
  local z = skd.zeros(2, 3, 2, 3)
  local pt = pred:totable()
  for b = 1, 2 do for y = 1, 2 do for x = 1, 3 do
    z:set(1.0 + b + y, b, pt[b][y][x] + 1, y, x)
  end end end
  local cm = skd.metrics.confusion(3):add(z, label)
  T.near(cm:matrix(), cm_ids:matrix(), 0)
  -- ties: all-equal logits predict class 1 (index 0)
  local cm_tie = skd.metrics.confusion(3):add(skd.zeros(1, 3, 1, 2), skd.tensor({{{0, 2}}}, int))
  T.eq(cm_tie:count(1, 1), 1); T.eq(cm_tie:count(3, 1), 1)
  -- an unbatched C x H x W with an H x W label
  local cm_u = skd.metrics.confusion(3):add(z:select(1, 1), label:select(1, 1))
  T.eq(cm_u:total(), 6)
end)

T.test("large random batches match a naive count (threaded path)", function()
  local B, C, H, W = 2, 11, 48, 64 -- B*H*W*C > the parallel grain
  local z = skd.randn(B, C, H, W)
  local lab = skd.zeros(B, H, W, int)
  local lt = {}
  for b = 1, B do lt[b] = {} for y = 1, H do lt[b][y] = {} for x = 1, W do
    local v = math.random(0, 11)
    lt[b][y][x] = v == 11 and 255 or v
  end end end
  lab = skd.tensor(lt, int)
  local cm = skd.metrics.confusion(C):add(z, lab)
  local zt, ref, total = z:totable(), {}, 0
  for t = 1, C do ref[t] = {} for p = 1, C do ref[t][p] = 0 end end
  for b = 1, B do for y = 1, H do for x = 1, W do
    local t = lt[b][y][x]
    if t ~= 255 then
      local best, k = -math.huge, 0
      for c = 1, C do if zt[b][c][y][x] > best then best, k = zt[b][c][y][x], c end end
      ref[t + 1][k] = ref[t + 1][k] + 1
      total = total + 1
    end
  end end end
  T.near(cm:matrix(), ref, 0)
  T.eq(cm:total(), total)
end)

T.test("reset, merge, accumulation over calls", function()
  local a = skd.metrics.confusion(3):add(pred, label):add(pred, label)
  T.eq(a:count(2, 2), 6)
  local b = skd.metrics.confusion(3):add(pred, label)
  b:merge(skd.metrics.confusion(3):add(pred, label))
  T.near(a:matrix(), b:matrix(), 0)
  a:reset()
  T.eq(a:total(), 0)
end)

T.test("the per-class table names the classes", function()
  local cm = skd.metrics.confusion(3):add(pred, label)
  local s = cm:table({"Road", "Sky", "Pedestrian"})
  print(s)
  T.ok(s:find("Pedestrian", 1, true) and s:find("Road", 1, true), s)
  T.ok(s:find("mIoU 41.67 over 3 of 3 classes", 1, true), s)
  T.ok(s:find("60.00", 1, true), "Sky's IoU as a percentage")
  T.ok(tostring(cm):find("3 classes", 1, true))
end)

T.test("bad inputs are clear errors", function()
  local cm = skd.metrics.confusion(3)
  T.raises(function() cm:add(pred, skd.tensor({{{0, 0, 7}, {1, 1, 0}}, {{2, 2, 255}, {2, 255, 1}}}, int)) end,
    "label value 7", "(1,1,3)", "outside 0..2")
  T.raises(function() cm:add(skd.tensor({{{0, 0, 1}, {1, 1, 3}}, {{2, 2, 0}, {2, 0, 1}}}, int), label) end,
    "predicted class 3", "(1,2,3)")
  T.raises(function() cm:add(skd.zeros(2, 4, 2, 3), label) end, "logits", "3 classes")
  T.raises(function() cm:add(skd.zeros(2, 3, 2, {dtype = "int32"}), label) end, "differ in shape")
  T.raises(function() cm:add(pred, label:float()) end, "label must be an int32")
  T.raises(function() skd.metrics.confusion(3, {ignore_index = 1}) end, "ignore_index 1")
  T.raises(function() skd.metrics.confusion(0) end, "num_classes")
  T.eq(cm:total(), 0, "a failed add counts nothing")
  -- predictions at ignored pixels are not checked
  cm:add(skd.tensor({{9, 0}}, int), skd.tensor({{255, 0}}, int))
  T.eq(cm:total(), 1)
end)

T.done()
