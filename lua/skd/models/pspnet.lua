-- PSPNet (Zhao et al. 2017) on a dilated ResNet, as method.md §4 describes it: the teacher
-- (head 512) and the student (head 128) of the distillation share this shape.
local skd = require "skd"
local nn = require "skd.nn"
local resnet = require "skd.models.resnet"
local Module = nn.Module

local P = {}

-- ---------------------------------------------------------------- pyramid pooling

-- For each bin b: adaptive average pool to b×b, 1×1 conv to C_in/4 (no bias), BN, ReLU,
-- bilinear upsample back (align_corners=true); the input and the upsampled maps are
-- concatenated: C_in + #bins·C_in/4 channels.
local PPM = Module:extend("PyramidPooling")
P.PPM = PPM

function PPM:__init(cin, bins, reduction)
  reduction = reduction or math.max(1, cin // 4)
  self.bins = bins
  self.out_channels = cin + #bins * reduction
  local stages = {}
  for i, b in ipairs(bins) do
    stages[i] = nn.Sequential{nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, reduction, 1, {bias = false}),
      nn.BatchNorm2d(reduction), nn.ReLU()}
  end
  self.stages = nn.ModuleList(stages)
  self._up = {mode = "bilinear", align_corners = true}
end

function PPM:forward(x)
  local size = {x:size(3), x:size(4)}
  local outs = {x}
  for i = 1, #self.bins do
    outs[i + 1] = skd.interpolate(self.stages:at(i)(x), size, self._up)
  end
  return skd.cat(outs, 2)
end

function PPM:extra_repr() return "bins={" .. table.concat(self.bins, ", ") .. "}" end

-- ---------------------------------------------------------------- the network

local PSPNet = Module:extend("PSPNet")
P.PSPNet = PSPNet

local function conv_bn_relu(cin, cout)
  return nn.Sequential{nn.Conv2d(cin, cout, 3, {padding = 1, bias = false}), nn.BatchNorm2d(cout), nn.ReLU()}
end

-- o: {backbone={depth=50, width=1.0, deep_stem=false, output_stride=8}, num_classes=,
--     bins={1,2,3,6}, head_channels=512, aux=true, aux_channels=256, dropout=0.1}
function PSPNet:__init(o)
  if type(o.num_classes) ~= "number" or o.num_classes < 1 then
    error("pspnet: expects num_classes (a positive integer)", 0)
  end
  local b = o.backbone or {}
  self.num_classes = o.num_classes
  self.backbone = resnet.ResNet{depth = b.depth or 50, width = b.width or 1.0,
    deep_stem = b.deep_stem or false, output_stride = b.output_stride or 8}
  local cin = self.backbone.out_channels
  local head = o.head_channels or 512
  local p = o.dropout or 0.1
  self.ppm = PPM(cin, o.bins or {1, 2, 3, 6})
  self.head = conv_bn_relu(self.ppm.out_channels, head)        -- its output: feat
  self.dropout = nn.Dropout2d(p)
  self.classifier = nn.Conv2d(head, o.num_classes, 1)
  if o.aux ~= false then
    local ac = o.aux_channels or 256
    self.aux = nn.Sequential{nn.Conv2d(self.backbone.layer3_channels, ac, 3, {padding = 1, bias = false}),
      nn.BatchNorm2d(ac), nn.ReLU(), nn.Dropout2d(p), nn.Conv2d(ac, o.num_classes, 1)}
  end
end

-- x: (B, 3, H, W) -> {logits = (B, K, h, w), feat = (B, head, h, w), aux = (B, K, h, w)} at
-- the backbone's output stride (8). feat is the head's 3×3 conv–BN–ReLU output, before
-- dropout and the classifier: the pair-wise term's feature. aux (layer3's head) is computed
-- in training only, or always when always_aux is set.
function PSPNet:forward(x)
  local x4, x3 = self.backbone(x)
  local feat = self.head(self.ppm(x4))
  local out = {logits = self.classifier(self.dropout(feat)), feat = feat}
  if rawget(self, "aux") and (self.training or self.always_aux) then out.aux = self.aux(x3) end
  return out
end

function PSPNet:extra_repr()
  return string.format("num_classes=%d", self.num_classes)
end

-- skd.models.pspnet{...}: built, then its parameters put in one flat buffer (init=false:
-- parameters left at zero, for a network about to load weights).
function P.pspnet(o)
  o = o or {}
  local net = o.init == false and nn.no_init(PSPNet, o) or PSPNet(o)
  if o.flatten ~= false then net:flatten() end
  return net
end

return P
