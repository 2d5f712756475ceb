-- skd.nn layers: Conv2d, BatchNorm2d, ReLU, LeakyReLU, MaxPool2d, AvgPool2d,
-- AdaptiveAvgPool2d, Upsample, Dropout2d, Linear, Identity, Sequential, ModuleList.
-- Each is a thin module over one engine op (lua/lnn.c); the parameter names, shapes, default
-- initialisation and printed form are PyTorch's, so that state dicts move both ways.
local skd = require "skd"
local Module = require "skd.nn.module"

local L = {}

-- v as an integer of at least min (a size, a count), else an error naming what it is.
local function whole(v, what, min, level)
  if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" or v < min then
    error(string.format("%s: expects an integer >= %d, got %s", what, min, tostring(v)), level or 3)
  end
  return v
end

-- v (a number or {h, w}) as a pair; with min, both entries integers of at least min.
local function pair(v, what, min)
  local p
  if type(v) == "number" then p = {v, v}
  elseif type(v) == "table" and #v == 2 then p = {v[1], v[2]}
  else error(string.format("%s: expects a number or a pair {h, w}, got %s", what, tostring(v)), 3) end
  if min then
    for i = 1, 2 do p[i] = whole(p[i], what, min, 4) end
  end
  return p
end

local function tuple(p) return string.format("(%d, %d)", p[1], p[2]) end

local init_enabled = true

-- U(-bound, bound) from the engine's generator; zeros while initialisation is off.
local function uniform(shape, bound)
  if not init_enabled then return skd.zeros(shape) end
  return skd.empty(shape):uniform_(-bound, bound)
end
L.uniform = uniform

-- Runs fn(...) with the layers' random initialisation off (weights made as zeros): for a
-- network about to load a checkpoint, or one that draws its own initialisation (ResNet).
function L.no_init(fn, ...)
  local prev = init_enabled
  init_enabled = false
  local r = table.pack(pcall(fn, ...))
  init_enabled = prev
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

function L.init_enabled() return init_enabled end

-- ---------------------------------------------------------------- Conv2d

local Conv2d = Module:extend("Conv2d")
L.Conv2d = Conv2d

-- Conv2d(cin, cout, k, {stride=1, padding=0, dilation=1, groups=1, bias=true}).
-- Initialisation as PyTorch: kaiming_uniform(a=√5) for the weight, i.e. U(±1/√fan_in), and
-- U(±1/√fan_in) for the bias.
function Conv2d:__init(cin, cout, k, opts)
  opts = opts or {}
  -- sizes checked here, so that a layer that cannot run is never built
  cin = whole(cin, "Conv2d in_channels", 1)
  cout = whole(cout, "Conv2d out_channels", 1)
  local groups = whole(opts.groups or 1, "Conv2d groups", 1)
  if cin % groups ~= 0 or cout % groups ~= 0 then
    error(string.format("Conv2d: %d input and %d output channels must both divide into %d groups", cin, cout, groups), 3)
  end
  self.in_channels, self.out_channels, self.groups = cin, cout, groups
  self.kernel_size = pair(k, "Conv2d kernel", 1)
  self.stride = pair(opts.stride or 1, "Conv2d stride", 1)
  self.padding = pair(opts.padding or 0, "Conv2d padding", 0)
  self.dilation = pair(opts.dilation or 1, "Conv2d dilation", 1)
  local fan_in = cin // groups * self.kernel_size[1] * self.kernel_size[2]
  local bound = 1 / math.sqrt(fan_in)
  self:param("weight", uniform({cout, cin // groups, self.kernel_size[1], self.kernel_size[2]}, bound))
  if opts.bias ~= false then self:param("bias", uniform({cout}, bound)) end
  self._opts = {stride = self.stride, padding = self.padding, dilation = self.dilation, groups = groups}
  -- 1x1, stride 1, unpadded, one group: the shape skd._conv2d_pointwise serves (forward)
  self._pointwise_shape = self.kernel_size[1] == 1 and self.kernel_size[2] == 1 and groups == 1
    and self.stride[1] == 1 and self.stride[2] == 1 and self.padding[1] == 0 and self.padding[2] == 0
end

-- The convolution with another weight and bias (SpectralNorm passes its normalised weight).
function Conv2d:forward_with(x, w, b)
  return skd.conv2d(x, w, b, self._opts)
end

-- The folded BatchNorm (fold.lua) on the conv's fresh output y, then + identity and ReLU when
-- asked: one in-place pass where no gradient is recorded, recorded ops otherwise.
local function folded_epilogue(self, y, identity, relu)
  local scale, shift = rawget(self, "_folded_scale"), rawget(self, "_folded_bias")
  if not y.requires_grad_ and not (identity and (identity.requires_grad_ or not identity:is_contiguous())) then
    return skd._channel_affine_(y, scale, shift, identity, relu)
  end
  y = y * scale:reshape(1, -1, 1, 1) + shift:reshape(1, -1, 1, 1)
  if identity then y = y + identity end
  return relu and skd.relu(y) or y
end

-- A frozen 1x1 convolution (stride 1, unpadded, one group; weight, and the bias it adds, not
-- requiring grad; evaluation mode) on an input no gradient is recorded for runs as
-- skd._conv2d_pointwise: its weight packed once for BLIS's micro-kernel and kept in the
-- module (packed again in place when the weight is written or replaced), the epilogue applied
-- block by block. Anything else: skd.conv2d, and a pack no longer used is dropped.
-- Images of fewer pixels (a pyramid pooling stage's 1x1 to 6x6) keep sgemm: the micro-kernel
-- multiplies 32 pixels at a time, so most of its work would be padding, and their weights
-- (4 MB a stage in PSPNet) are not worth holding twice.
local pointwise_ok = skd._pointwise_available()
local POINTWISE_MIN_PIXELS = 64

local function pointwise_fits(self, x, identity, bias)
  if not pointwise_ok or self.training or not self._pointwise_shape then return false end
  local w = self.weight
  if not w:is_contiguous() or w:dtype() ~= "float32" then return false end
  local grad = skd.grad_enabled()
  if grad and (w.requires_grad_ or (bias and bias.requires_grad_)) then return false end
  if not skd.is_tensor(x) or x:dim() ~= 4 or x:dtype() ~= "float32" or not x:is_contiguous()
    or x:size(2) ~= self.in_channels or x:size(3) * x:size(4) < POINTWISE_MIN_PIXELS
    or (grad and x.requires_grad_) then
    return false
  end
  return not identity or (identity:is_contiguous() and not (grad and identity.requires_grad_))
end

local function pointwise(self, x, scale, shift, identity, relu)
  local y, pack = skd._conv2d_pointwise(x, self.weight, rawget(self, "_pointwise"), scale, shift, identity, relu)
  rawset(self, "_pointwise", pack)
  return y
end

-- The unpacked path: a pack kept from earlier calls (before requires_grad(true), say) goes.
local function conv2d(self, x, bias)
  if rawget(self, "_pointwise") then rawset(self, "_pointwise", nil) end
  return skd.conv2d(x, self.weight, bias, self._opts)
end

function Conv2d:forward(x)
  if rawget(self, "_folded_scale") and not self.training then -- a BatchNorm folded in
    if pointwise_fits(self, x) then
      return pointwise(self, x, self._folded_scale, self._folded_bias)
    end
    return folded_epilogue(self, conv2d(self, x))
  end
  if pointwise_fits(self, x, nil, self.bias) then return pointwise(self, x, nil, self.bias) end
  return conv2d(self, x, self.bias)
end

-- relu(conv(x)·s + b' (+ identity)) for a conv with a BatchNorm folded in (fold.lua), in
-- evaluation mode: a frozen ResNet block's conv → bn (→ sum) → ReLU, the last three in one pass
-- over the fresh output where no gradient is recorded.
function Conv2d:forward_folded_relu(x, identity)
  if not rawget(self, "_folded_scale") or self.training then
    error("Conv2d:forward_folded_relu: expects a convolution with a BatchNorm folded in, in evaluation mode (Module:freeze)", 2)
  end
  if pointwise_fits(self, x, identity) then
    return pointwise(self, x, self._folded_scale, self._folded_bias, identity, true)
  end
  return folded_epilogue(self, conv2d(self, x), identity, true)
end

-- Multiply-adds per image for an output of shape (N, C, H, W): models.summary.
function Conv2d:macs(out)
  local s = out:size()
  return s[2] * s[3] * s[4] * (self.in_channels // self.groups) * self.kernel_size[1] * self.kernel_size[2]
end

function Conv2d:extra_repr()
  local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
    tuple(self.kernel_size), tuple(self.stride))
  if self.padding[1] ~= 0 or self.padding[2] ~= 0 then s = s .. ", padding=" .. tuple(self.padding) end
  if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then s = s .. ", dilation=" .. tuple(self.dilation) end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if not rawget(self, "bias") then s = s .. ", bias=False" end
  return s
end

-- ---------------------------------------------------------------- BatchNorm2d

local BatchNorm2d = Module:extend("BatchNorm2d")
L.BatchNorm2d = BatchNorm2d

-- BatchNorm2d(c, {eps=1e-5, momentum=0.1}): weight 1, bias 0, running_mean 0, running_var 1,
-- num_batches_tracked (int32 0-d; PyTorch's is int64, either loads).
function BatchNorm2d:__init(c, opts)
  opts = opts or {}
  c = whole(c, "BatchNorm2d num_features", 1)
  self.num_features = c
  self.eps = opts.eps or 1e-5
  self.momentum = opts.momentum or 0.1
  self:param("weight", skd.ones(c))
  self:param("bias", skd.zeros(c))
  self:buffer("running_mean", skd.zeros(c))
  self:buffer("running_var", skd.ones(c))
  self:buffer("num_batches_tracked", skd.tensor(0, {dtype = "int32"}))
  self._opts_train = {training = true, momentum = self.momentum, eps = self.eps}
  self._opts_eval = {training = false, momentum = self.momentum, eps = self.eps}
end

function BatchNorm2d:forward(x)
  if not self.training then
    if rawget(self, "_folded") then return x end -- freeze() moved it into the conv before
    return skd.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self._opts_eval)
  end
  local y = skd.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self._opts_train)
  local n = self.num_batches_tracked
  n:fill_(n:item() + 1)
  return y
end

function BatchNorm2d:extra_repr()
  return string.format("%d, eps=%g, momentum=%g", self.num_features, self.eps, self.momentum)
end

-- ---------------------------------------------------------------- activations

local ReLU = Module:extend("ReLU")
L.ReLU = ReLU
function ReLU:forward(x) return skd.relu(x) end

local LeakyReLU = Module:extend("LeakyReLU")
L.LeakyReLU = LeakyReLU
function LeakyReLU:__init(slope) self.negative_slope = slope or 0.01 end
function LeakyReLU:forward(x) return x:leaky_relu(self.negative_slope) end
function LeakyReLU:extra_repr() return string.format("negative_slope=%g", self.negative_slope) end

local Identity = Module:extend("Identity")
L.Identity = Identity
function Identity:forward(x) return x end

-- ---------------------------------------------------------------- pooling, resizing, dropout

local function pool_init(self, k, opts)
  opts = opts or {}
  self.kernel_size = pair(k, self:type() .. " kernel", 1)
  self.stride = pair(opts.stride or k, self:type() .. " stride", 1)
  self.padding = pair(opts.padding or 0, self:type() .. " padding", 0)
  self.ceil_mode = opts.ceil_mode or false
  self._opts = {kernel = self.kernel_size, stride = self.stride, padding = self.padding,
    ceil_mode = self.ceil_mode, count_include_pad = opts.count_include_pad ~= false}
end

local function pool_repr(self)
  return string.format("kernel_size=%s, stride=%s, padding=%s, ceil_mode=%s", tuple(self.kernel_size),
    tuple(self.stride), tuple(self.padding), tostring(self.ceil_mode))
end

-- MaxPool2d(k, {stride=k, padding=0, ceil_mode=false})
local MaxPool2d = Module:extend("MaxPool2d")
L.MaxPool2d = MaxPool2d
MaxPool2d.__init = pool_init
MaxPool2d.extra_repr = pool_repr
function MaxPool2d:forward(x) return skd.max_pool2d(x, self._opts) end

-- AvgPool2d(k, {stride=k, padding=0, ceil_mode=false, count_include_pad=true})
local AvgPool2d = Module:extend("AvgPool2d")
L.AvgPool2d = AvgPool2d
AvgPool2d.__init = pool_init
AvgPool2d.extra_repr = pool_repr
function AvgPool2d:forward(x) return skd.avg_pool2d(x, self._opts) end

-- AdaptiveAvgPool2d(size): size a number or {h, w}.
local AdaptiveAvgPool2d = Module:extend("AdaptiveAvgPool2d")
L.AdaptiveAvgPool2d = AdaptiveAvgPool2d
function AdaptiveAvgPool2d:__init(size) self.output_size = pair(size, "AdaptiveAvgPool2d size", 1) end
function AdaptiveAvgPool2d:forward(x) return skd.adaptive_avg_pool2d(x, self.output_size) end
function AdaptiveAvgPool2d:extra_repr() return "output_size=" .. tuple(self.output_size) end

-- Upsample{size={h, w} | scale_factor=s, mode="bilinear", align_corners=false}
local Upsample = Module:extend("Upsample")
L.Upsample = Upsample
function Upsample:__init(opts)
  opts = opts or {}
  if not opts.size and not opts.scale_factor then
    error("Upsample: expects size={h, w} or scale_factor=s", 3)
  end
  self.size = opts.size and pair(opts.size, "Upsample size", 1)
  if not opts.size and not (type(opts.scale_factor) == "number" and opts.scale_factor > 0) then
    error("Upsample: scale_factor must be a number > 0, got " .. tostring(opts.scale_factor), 3)
  end
  self.scale_factor = opts.scale_factor
  self.mode = opts.mode or "bilinear"
  self.align_corners = opts.align_corners or false
  self._opts = {mode = self.mode, align_corners = self.align_corners}
end

function Upsample:forward(x)
  local size = self.size
  if not size then
    local s = x:size()
    size = {math.floor(s[3] * self.scale_factor), math.floor(s[4] * self.scale_factor)}
  end
  return skd.interpolate(x, size, self._opts)
end

function Upsample:extra_repr()
  local what = self.size and ("size=" .. tuple(self.size)) or string.format("scale_factor=%g", self.scale_factor)
  return string.format("%s, mode='%s', align_corners=%s", what, self.mode, tostring(self.align_corners))
end

-- Dropout2d(p=0.5): zeroes whole channels in training (engine RNG), identity in evaluation.
local Dropout2d = Module:extend("Dropout2d")
L.Dropout2d = Dropout2d
function Dropout2d:__init(p)
  p = p or 0.5
  if type(p) ~= "number" or not (p >= 0 and p < 1) then
    error("Dropout2d: p must be a number in [0, 1), got " .. tostring(p), 3)
  end
  self.p = p
end
function Dropout2d:forward(x)
  if not self.training or self.p == 0 then return x end
  return skd.dropout2d(x, self.p, true)
end
function Dropout2d:extra_repr() return string.format("p=%g", self.p) end

-- ---------------------------------------------------------------- Linear

-- Linear(in, out, {bias=true}): y = x Wᵀ + b, W (out, in); PyTorch's init, U(±1/√in).
local Linear = Module:extend("Linear")
L.Linear = Linear
function Linear:__init(nin, nout, opts)
  nin, nout = whole(nin, "Linear in_features", 1), whole(nout, "Linear out_features", 1)
  self.in_features, self.out_features = nin, nout
  local bound = 1 / math.sqrt(nin)
  self:param("weight", uniform({nout, nin}, bound))
  if not (opts and opts.bias == false) then self:param("bias", uniform({nout}, bound)) end
end

function Linear:forward_with(x, w, b)
  local y = skd.matmul(x, w:transpose(1, 2))
  if b then y = y + b end
  return y
end

function Linear:forward(x) return self:forward_with(x, self.weight, self.bias) end

function Linear:macs(out) return out:numel() // out:size(1) * self.in_features end

function Linear:extra_repr()
  return string.format("in_features=%d, out_features=%d, bias=%s", self.in_features, self.out_features,
    rawget(self, "bias") and "True" or "False")
end

-- ---------------------------------------------------------------- containers

-- Children given as a list {m1, m2, ...} or as arguments, named "0", "1", ... (PyTorch's
-- names, so that torchvision's downsample.0.weight is ours too).
local function add_list(self, first, ...)
  local list = Module.is_module(first) and {first, ...} or (first or {})
  for _, m in ipairs(list) do self:add(tostring(#self._children), m) end
end

-- The i-th child, 1-based.
local function at(self, i)
  local name = self._children[i]
  if not name then
    error(string.format("%s: no child %d (it has %d)", self:type(), i, #self._children), 2)
  end
  return rawget(self, name)
end

local Sequential = Module:extend("Sequential")
L.Sequential = Sequential
Sequential.__init = add_list
Sequential.at = at
function Sequential:append(m)
  self:add(tostring(#self._children), m)
  return self
end

function Sequential:forward(x, ...)
  local children = self._children
  if #children == 0 then return x end
  local y = rawget(self, children[1])(x, ...)
  for i = 2, #children do y = rawget(self, children[i])(y) end
  return y
end

-- BatchNorm directly after a convolution can be folded into it (freeze).
function Sequential:fold_pairs()
  local out = {}
  for i = 1, #self._children - 1 do
    local a, b = rawget(self, self._children[i]), rawget(self, self._children[i + 1])
    if getmetatable(a) == Conv2d and getmetatable(b) == BatchNorm2d then
      out[#out + 1] = {self._children[i], self._children[i + 1]}
    end
  end
  return out
end

-- A list of children without a forward of its own (PSP's pyramid stages).
local ModuleList = Module:extend("ModuleList")
L.ModuleList = ModuleList
ModuleList.__init = add_list
ModuleList.at = at
function ModuleList:append(m)
  self:add(tostring(#self._children), m)
  return self
end

return L
