-- skd.metrics — segmentation metrics from a confusion matrix accumulated in C (int64 counts;
-- core/metrics.c, whose header defines every quantity).
--
--   local cm = skd.metrics.confusion(11, {ignore_index = 255})
--   cm:add(pred, label)     -- pred: B x H x W int32 class ids, or B x C x H x W logits (argmax)
--   cm:iou()                -- {IoU_1, ..., IoU_C}; NaN for a class in neither labels nor predictions
--   cm:miou()               -- mean IoU over the classes with TP + FP + FN > 0 (method.md §5)
--   cm:pixel_accuracy()  cm:class_accuracy()  cm:matrix()  cm:count(t, p)  cm:reset()
--   print(cm:table(ds.classes))
local metrics = {}

function metrics.confusion(num_classes, opts)
  if math.type(num_classes) ~= "integer" then
    error("confusion: num_classes must be an integer, got " .. tostring(num_classes), 2)
  end
  opts = opts or {}
  return skd._confusion(num_classes, opts.ignore_index or 255)
end

local M = skd._confusion_methods

local function pct(x)
  if x ~= x then return "      -" end
  return string.format("%7.2f", 100 * x)
end

-- A per-class table: IoU, class accuracy (recall), share of the labelled pixels; then mIoU
-- and pixel accuracy. names: class names (default "class 1", ...).
function M:table(names)
  local C = self:num_classes()
  names = names or {}
  local iou, acc = self:iou(), self:class_accuracy()
  local total = self:total()
  local width = 10
  for c = 1, C do width = math.max(width, #tostring(names[c] or ("class " .. c))) end
  local lines = {string.format("%-" .. width .. "s %7s %7s %7s", "class", "IoU", "acc", "pixels")}
  for c = 1, C do
    local row = 0
    for p = 1, C do row = row + self:count(c, p) end
    lines[#lines + 1] = string.format("%-" .. width .. "s %s %s %6.2f%%", names[c] or ("class " .. c),
      pct(iou[c]), pct(acc[c]), total > 0 and 100 * row / total or 0)
  end
  local present = 0
  for c = 1, C do if iou[c] == iou[c] then present = present + 1 end end
  lines[#lines + 1] = string.format("mIoU %.2f over %d of %d classes, pixel accuracy %.2f, %d pixels",
    100 * self:miou(), present, C, 100 * self:pixel_accuracy(), total)
  return table.concat(lines, "\n")
end

-- Mean class accuracy over the classes present in the labels.
function M:mean_class_accuracy()
  local s, n = 0, 0
  for _, a in ipairs(self:class_accuracy()) do
    if a == a then s, n = s + a, n + 1 end
  end
  return n > 0 and s / n or 0 / 0
end

getmetatable(skd._confusion(1, -1)).__tostring = function(self)
  return string.format("skd.metrics.confusion (%d classes, %d pixels, mIoU %.4f)",
    self:num_classes(), self:total(), self:miou())
end

return metrics
