-- ResNet (He et al. 2016) as torchvision builds it — same parameter names, order and counts
-- for num_classes=1000, output_stride=32, deep_stem=false — plus the segmentation variants
-- of method.md §4: a width multiplier, output stride 16/8 by dilation, and the deep stem.
local skd = require "skd"
local nn = require "skd.nn"
local Module = nn.Module

local R = {}

local function conv3x3(cin, cout, stride, dilation)
  return nn.Conv2d(cin, cout, 3, {stride = stride, padding = dilation, dilation = dilation, bias = false})
end

local function conv1x1(cin, cout, stride)
  return nn.Conv2d(cin, cout, 1, {stride = stride, bias = false})
end

-- ---------------------------------------------------------------- blocks

-- Two 3×3 convolutions (ResNet-18/34). The stride is on conv1; a dilated block dilates both.
local BasicBlock = Module:extend("BasicBlock")
R.BasicBlock = BasicBlock
BasicBlock.expansion = 1
BasicBlock._fold_pairs = {{"conv1", "bn1"}, {"conv2", "bn2"}}

function BasicBlock:__init(inplanes, planes, stride, dilation, downsample)
  self.conv1 = conv3x3(inplanes, planes, stride, dilation)
  self.bn1 = nn.BatchNorm2d(planes)
  self.relu = nn.ReLU()
  self.conv2 = conv3x3(planes, planes, 1, dilation)
  self.bn2 = nn.BatchNorm2d(planes)
  if downsample then self.downsample = downsample end
end

-- Where no gradient is recorded (a frozen teacher), the ReLUs and the residual sum work in
-- place on the fresh outputs of convolution and BatchNorm: no extra tensor per activation.
-- Not where the block's activation is not a plain ReLU, nor where one of the modules that
-- made the tensor, or the ReLU, is tapped (m:tap).
local function tapped(m, conv, bn)
  return getmetatable(m.relu) ~= nn.ReLU or rawget(conv, "_tapped") or rawget(bn, "_tapped")
    or rawget(m.relu, "_tapped")
end

local function relu_fresh(m, t, conv, bn)
  if t.requires_grad_ or tapped(m, conv, bn) then return m.relu(t) end
  return t:relu_()
end

local function residual_relu(m, out, identity, conv, bn)
  if out.requires_grad_ or identity.requires_grad_ or tapped(m, conv, bn) then
    return m.relu(out + identity)
  end
  return out:add_(identity):relu_()
end

-- conv → bn (→ + identity) → ReLU. Where freeze() folded bn into conv and nothing is recorded,
-- tapped or hooked (models.summary), the folded affine, the sum and the ReLU are one pass over
-- the convolution's fresh output (Conv2d:forward_folded_relu, called as a module call) instead
-- of three. identity_of: nil, or a function giving the identity (the fused path needs it
-- before the convolution, the other computes it after the BatchNorm, as before).
local function fusable(m, conv, bn)
  return rawget(conv, "_folded_scale") and not conv.training and rawget(bn, "_folded")
    and not tapped(m, conv, bn) and not Module.call_hooked()
end

local function conv_bn_relu(m, conv, bn, x, identity_of)
  if fusable(m, conv, bn) then
    return conv:invoke("forward_folded_relu", x, identity_of and identity_of())
  end
  local out = bn(conv(x))
  if identity_of then return residual_relu(m, out, identity_of(), conv, bn) end
  return relu_fresh(m, out, conv, bn)
end

-- The stem's conv → bn → ReLU: fused as the blocks' are, else the ReLU module (not in place).
local function stem_conv(m, conv, bn, x)
  if fusable(m, conv, bn) then return conv:invoke("forward_folded_relu", x) end
  return m.relu(bn(conv(x)))
end

function BasicBlock:forward(x)
  local out = conv_bn_relu(self, self.conv1, self.bn1, x)
  return conv_bn_relu(self, self.conv2, self.bn2, out,
    function() return rawget(self, "downsample") and self.downsample(x) or x end)
end

-- 1×1 reduce, 3×3 (stride and dilation here: torchvision's "ResNet v1.5"), 1×1 expand ×4
-- (ResNet-50/101/152).
local Bottleneck = Module:extend("Bottleneck")
R.Bottleneck = Bottleneck
Bottleneck.expansion = 4
Bottleneck._fold_pairs = {{"conv1", "bn1"}, {"conv2", "bn2"}, {"conv3", "bn3"}}

function Bottleneck:__init(inplanes, planes, stride, dilation, downsample)
  self.conv1 = conv1x1(inplanes, planes, 1)
  self.bn1 = nn.BatchNorm2d(planes)
  self.conv2 = conv3x3(planes, planes, stride, dilation)
  self.bn2 = nn.BatchNorm2d(planes)
  self.conv3 = conv1x1(planes, planes * 4, 1)
  self.bn3 = nn.BatchNorm2d(planes * 4)
  self.relu = nn.ReLU()
  if downsample then self.downsample = downsample end
end

function Bottleneck:forward(x)
  local out = conv_bn_relu(self, self.conv1, self.bn1, x)
  out = conv_bn_relu(self, self.conv2, self.bn2, out)
  return conv_bn_relu(self, self.conv3, self.bn3, out,
    function() return rawget(self, "downsample") and self.downsample(x) or x end)
end

-- ---------------------------------------------------------------- the network

local CONFIGS = {
  [18] = {BasicBlock, {2, 2, 2, 2}},
  [34] = {BasicBlock, {3, 4, 6, 3}},
  [50] = {Bottleneck, {3, 4, 6, 3}},
  [101] = {Bottleneck, {3, 4, 23, 3}},
  [152] = {Bottleneck, {3, 8, 36, 3}},
}

-- Which of layer2..4 trade their stride for dilation, per output stride.
local DILATE = {[32] = {false, false, false}, [16] = {false, false, true}, [8] = {false, true, true}}

local ResNet = Module:extend("ResNet")
R.ResNet = ResNet

-- o: {depth=18, width=1.0, output_stride=32, deep_stem=false, num_classes=nil}
function ResNet:__init(o)
  local init = nn.init_enabled()
  nn.no_init(self.build, self, o) -- the convolutions' default draw would be overwritten below
  if o.num_classes then
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(self.out_channels, o.num_classes)
  end
  -- torchvision's initialisation: He-normal (fan_out) convolutions, BatchNorm γ=1, β=0
  if init then
    skd.no_grad(function()
      for _, m in ipairs(self:modules()) do
        if getmetatable(m) == nn.Conv2d then
          local w = m.weight
          local fan_out = w:size(1) * w:size(3) * w:size(4)
          w:normal_(0, math.sqrt(2 / fan_out))
        end
      end
    end)
  end
end

function ResNet:build(o)
  local cfg = CONFIGS[o.depth or 18]
  if not cfg then error("resnet: depth must be 18, 34, 50, 101 or 152, got " .. tostring(o.depth), 0) end
  local os = o.output_stride or 32
  local dilate = DILATE[os]
  if not dilate then error("resnet: output_stride must be 8, 16 or 32, got " .. tostring(os), 0) end
  local width = o.width or 1.0
  if type(width) ~= "number" or width <= 0 then error("resnet: width must be a positive number", 0) end
  local function ch(c) return math.max(1, math.floor(c * width + 0.5)) end
  local block, counts = cfg[1], cfg[2]
  self.depth, self.width, self.output_stride = o.depth or 18, width, os
  self.deep_stem = o.deep_stem and true or false

  if self.deep_stem then
    -- the authors' stem: three 3×3 convolutions (64, 64, 128 at width 1)
    self.conv1 = conv3x3(3, ch(64), 2, 1)
    self.bn1 = nn.BatchNorm2d(ch(64))
    self.relu = nn.ReLU()
    self.conv2 = conv3x3(ch(64), ch(64), 1, 1)
    self.bn2 = nn.BatchNorm2d(ch(64))
    self.conv3 = conv3x3(ch(64), ch(128), 1, 1)
    self.bn3 = nn.BatchNorm2d(ch(128))
    self._fold_pairs = {{"conv1", "bn1"}, {"conv2", "bn2"}, {"conv3", "bn3"}}
    self.inplanes = ch(128)
  else
    self.conv1 = nn.Conv2d(3, ch(64), 7, {stride = 2, padding = 3, bias = false})
    self.bn1 = nn.BatchNorm2d(ch(64))
    self.relu = nn.ReLU()
    self._fold_pairs = {{"conv1", "bn1"}}
    self.inplanes = ch(64)
  end
  self.maxpool = nn.MaxPool2d(3, {stride = 2, padding = 1})
  self.dilation = 1
  self.layer1 = self:make_layer(block, ch(64), counts[1], 1, false)
  self.layer2 = self:make_layer(block, ch(128), counts[2], 2, dilate[1])
  self.layer3_channels = ch(256) * block.expansion
  self.layer3 = self:make_layer(block, ch(256), counts[3], 2, dilate[2])
  self.layer4 = self:make_layer(block, ch(512), counts[4], 2, dilate[3])
  self.out_channels = ch(512) * block.expansion
end

-- A stage of `blocks` blocks. A dilated stage keeps stride 1 and multiplies the dilation by
-- the stride it gives up; its first block keeps the previous dilation (half of the stage's,
-- as torchvision's replace_stride_with_dilation and the PSPNet/DeepLab code do).
function ResNet:make_layer(block, planes, blocks, stride, dilate)
  local previous = self.dilation
  if dilate then
    self.dilation = self.dilation * stride
    stride = 1
  end
  local downsample
  if stride ~= 1 or self.inplanes ~= planes * block.expansion then
    downsample = nn.Sequential{conv1x1(self.inplanes, planes * block.expansion, stride),
      nn.BatchNorm2d(planes * block.expansion)}
  end
  local list = {block(self.inplanes, planes, stride, previous, downsample)}
  self.inplanes = planes * block.expansion
  for _ = 2, blocks do list[#list + 1] = block(self.inplanes, planes, 1, self.dilation) end
  return nn.Sequential(list)
end

-- x: (B, 3, H, W). With a classifier: (B, num_classes). As a backbone: the layer4 features
-- (B, C, H/os, W/os) and, second, the layer3 features (the aux head's input).
function ResNet:forward(x)
  x = stem_conv(self, self.conv1, self.bn1, x)
  if self.deep_stem then
    x = stem_conv(self, self.conv2, self.bn2, x)
    x = stem_conv(self, self.conv3, self.bn3, x)
  end
  x = self.maxpool(x)
  x = self.layer1(x)
  x = self.layer2(x)
  local x3 = self.layer3(x)
  local x4 = self.layer4(x3)
  if rawget(self, "fc") then
    local p = self.avgpool(x4)
    return self.fc(p:reshape(p:size(1), -1))
  end
  return x4, x3
end

function ResNet:extra_repr()
  return string.format("depth=%d, width=%g, output_stride=%d, deep_stem=%s", self.depth, self.width,
    self.output_stride, tostring(self.deep_stem))
end

-- skd.models.resnet{depth=18, width=1.0, output_stride=32, deep_stem=false, num_classes=nil}
-- init=false: parameters left at zero (BatchNorm at 1/0), for a network about to load weights.
function R.resnet(o)
  o = o or {}
  local net = o.init == false and nn.no_init(ResNet, o) or ResNet(o)
  if o.flatten ~= false then net:flatten() end
  return net
end

return R
