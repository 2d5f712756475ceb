-- The holistic term's critic (method.md §3): a SAGAN-style discriminator that scores a
-- segmentation map, conditioned on the image ("image", the paper) or on nothing but the
-- BatchNorm'ed logits ("logits", the authors' code).
local skd = require "skd"
local nn = require "skd.nn"
local Module = nn.Module

local D = {}

local MIN_SIZE = 16 -- 2^4: the four stride-2 convolutions

local Discriminator = Module:extend("Discriminator")
D.Discriminator = Discriminator

local function sn_block(cin, cout)
  return nn.Sequential{nn.SpectralNorm(nn.Conv2d(cin, cout, 4, {stride = 2, padding = 1})), nn.LeakyReLU(0.1)}
end

-- o: {num_classes=, condition="image"|"logits", in_channels=(C+3 | C), width=64,
--     align_corners=true (resizing the image in prepare)}
function Discriminator:__init(o)
  local cond = o.condition or "image"
  if cond ~= "image" and cond ~= "logits" then
    error("discriminator: condition must be \"image\" or \"logits\", got \"" .. tostring(cond) .. "\"", 0)
  end
  if not o.in_channels and type(o.num_classes) ~= "number" then
    error("discriminator: expects num_classes (or in_channels)", 0)
  end
  local w = o.width or 64
  self.condition = cond
  self.num_classes = o.num_classes
  self.in_channels = o.in_channels or (cond == "image" and o.num_classes + 3 or o.num_classes)
  self.align_corners = o.align_corners ~= false
  if cond == "logits" then self.preprocess = nn.BatchNorm2d(self.in_channels) end
  self.l1 = sn_block(self.in_channels, w)
  self.l2 = sn_block(w, 2 * w)
  self.l3 = sn_block(2 * w, 4 * w)
  self.attn1 = nn.SelfAttention(4 * w)
  self.l4 = sn_block(4 * w, 8 * w)
  self.attn2 = nn.SelfAttention(8 * w)
  self.last = nn.Conv2d(8 * w, 1, 4) -- no spectral norm
end

-- The critic's input for logits z (B, C, h, w) and, for the "image" condition, the image
-- batch (B, 3, H, W): concat(softmax(z), image resized to h×w) -> (B, C+3, h, w). The image
-- is a constant (detached). For "logits" z itself (the BatchNorm is part of forward).
function Discriminator:prepare(z, image)
  if self.condition == "logits" then return z end
  if not skd.is_tensor(image) then error("Discriminator:prepare: the \"image\" condition needs the image batch", 2) end
  if image:dim() == 3 then image = image:unsqueeze(1) end
  local h, w = z:size(3), z:size(4)
  image = image:detach()
  if image:size(3) ~= h or image:size(4) ~= w then
    image = skd.interpolate(image, {h, w}, {mode = "bilinear", align_corners = self.align_corners})
  end
  return skd.cat({skd.softmax(z, 2), image}, 2)
end

-- x: (B, in_channels, h, w) -> one score per image, (B). Four stride-2 convolutions need at
-- least 16×16: a smaller map (the logits of a 64×96 crop are 8×12) is first enlarged by the
-- smallest integer factor that makes both sides at least 16 (bilinear, align_corners), so the
-- critic scores maps of any size. The last layer is the 4×4 convolution when the map reaching it is 4×4; for any other size
-- the map is averaged over positions and scored with the same kernel summed over its 16
-- taps — exactly what the 4×4 convolution gives on a constant map, so both paths share one
-- set of weights (last.weight, last.bias).
function Discriminator:forward(x)
  local s = x:size()
  if #s ~= 4 or s[2] ~= self.in_channels then
    error(string.format("discriminator: expects (B, %d, h, w), got %s", self.in_channels, Module._shape_str(x)), 0)
  end
  if rawget(self, "preprocess") then x = self.preprocess(x) end
  local short = math.min(s[3], s[4])
  if short < MIN_SIZE then
    local f = -(-MIN_SIZE // short) -- ceil
    x = skd.interpolate(x, {s[3] * f, s[4] * f}, {mode = "bilinear", align_corners = true})
  end
  local out = self.l3(self.l2(self.l1(x)))
  out = self.attn1(out)
  out = self.attn2(self.l4(out))
  local b, h, w = s[1], out:size(3), out:size(4)
  if h == 4 and w == 4 then return self.last(out):reshape(b) end
  local pooled = out:mean(4):mean(3)                                 -- (B, C)
  local kernel = self.last.weight:sum(4):sum(3)                       -- (1, C)
  return (skd.matmul(pooled, kernel:transpose(1, 2)) + self.last.bias):reshape(b)
end

function Discriminator:extra_repr()
  return string.format("condition=%s, in_channels=%d", self.condition, self.in_channels)
end

-- skd.models.discriminator{num_classes=, condition="image"|"logits", ...}
function D.discriminator(o)
  o = o or {}
  local net = o.init == false and nn.no_init(Discriminator, o) or Discriminator(o)
  if o.flatten ~= false then net:flatten() end
  return net
end

return D
