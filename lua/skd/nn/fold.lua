-- Freezing a network for inference (the distillation teacher): evaluation mode, no
-- gradients, and every BatchNorm that directly follows a convolution folded into it:
--   y = conv(x, W)·s + b',  s = γ/√(σ² + ε),  b' = (b − μ)·s + β   (per output channel),
-- which is conv(x, W·s) + b' without a scaled copy of W: the scale and shift are applied to
-- the convolution's fresh output (state_dict() returns the weights unchanged). The one copy
-- a frozen network does make is for speed: each 1x1 convolution (stride 1, unpadded) keeps
-- its weight laid out in the GEMM micro-kernel's panels from its first forward on
-- (layers.lua, core/conv2d_pointwise.c), the folded affine applied block by block; that is
-- ~105 MB more for a PSPNet-ResNet-101 teacher, whose 1x1 weights are 40 % of its 270 MB.
-- train() or unfreeze() drops the folding.
local skd = require "skd"
local Module = require "skd.nn.module"
local layers = require "skd.nn.layers"

-- Pairs {conv_name, bn_name} of children where the BatchNorm consumes the conv's output and
-- nothing else does. Modules declare them (ResNet blocks); Sequential finds adjacent ones.
function Module:fold_pairs()
  return rawget(self, "_fold_pairs") or getmetatable(self)._fold_pairs or {}
end

local function fold_one(conv, bn)
  local c = conv.out_channels
  local scale = bn.weight:detach() / (bn.running_var + bn.eps):sqrt()          -- (C)
  local b = conv.bias and conv.bias:detach() or skd.zeros(c)
  b = (b - bn.running_mean) * scale + bn.bias:detach()
  rawset(conv, "_folded_scale", scale:contiguous())
  rawset(conv, "_folded_bias", b:contiguous())
  rawset(bn, "_folded", true)
end

-- Folds every declared conv/BatchNorm pair of the tree (from the current running statistics);
-- returns the number folded. Only meaningful in evaluation mode, which the folded modules
-- check before using the copies.
function Module:fold_batchnorm()
  local n = 0
  skd.no_grad(function()
    Module._walk(self, "", function(_, m)
      for _, p in ipairs(m:fold_pairs()) do
        local conv, bn = rawget(m, p[1]), rawget(m, p[2])
        if getmetatable(conv) == layers.Conv2d and getmetatable(bn) == layers.BatchNorm2d
          and conv.out_channels == bn.num_features then
          fold_one(conv, bn)
          n = n + 1
        end
      end
    end)
  end)
  return n
end

-- Evaluation mode, requires_grad off on every parameter (their gradients dropped, and with
-- them a flat gradient buffer), BatchNorm folded.
function Module:freeze()
  self:eval()
  for _, p in ipairs(self:parameters()) do p:requires_grad(false); p.grad = nil end
  Module._drop_flat_grads(self)
  self:fold_batchnorm()
  rawset(self, "frozen", true)
  return self
end

-- Undoes freeze(): parameters require grad again, folding dropped, training mode.
function Module:unfreeze()
  for _, p in ipairs(self:parameters()) do p:requires_grad(true) end
  rawset(self, "frozen", nil)
  return self:train()
end

return {fold_one = fold_one}
