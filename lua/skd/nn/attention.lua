-- skd.nn.SelfAttention and skd.nn.SpectralNorm: the two pieces of the SAGAN critic that
-- scores segmentation maps for the holistic term (method.md §3).
local skd = require "skd"
local Module = require "skd.nn.module"
local layers = require "skd.nn.layers"

local A = {}

-- ---------------------------------------------------------------- SelfAttention

-- SelfAttention(c, {reduction=8}) (SAGAN, Zhang et al. 2019): q = W_q x and k = W_k x are
-- 1×1 convolutions to c/8 channels, v = W_v x a 1×1 convolution c -> c; over the N = H·W
-- positions A = softmax_j(q_iᵀ k_j) and out = γ·(v Aᵀ) + x, with the learnable scalar γ
-- starting at 0, so that the block begins as the identity. Names as in the SAGAN code
-- (query_conv, key_conv, value_conv, gamma).
local SelfAttention = Module:extend("SelfAttention")
A.SelfAttention = SelfAttention

function SelfAttention:__init(c, opts)
  local r = opts and opts.reduction or 8
  self.channels = c
  self.inner = math.max(1, c // r)
  self.query_conv = layers.Conv2d(c, self.inner, 1)
  self.key_conv = layers.Conv2d(c, self.inner, 1)
  self.value_conv = layers.Conv2d(c, c, 1)
  self:param("gamma", skd.zeros(1))
end

-- x: (B, C, H, W) -> (B, C, H, W). Also returns the attention map A (B, N, N).
function SelfAttention:forward(x)
  local s = x:size()
  local b, c, n = s[1], s[2], s[3] * s[4]
  local q = self.query_conv(x):reshape(b, self.inner, n):transpose(2, 3) -- (B, N, c/8)
  local k = self.key_conv(x):reshape(b, self.inner, n)                   -- (B, c/8, N)
  local attn = skd.softmax(skd.matmul(q, k), 3)                          -- (B, N, N), over j
  local v = self.value_conv(x):reshape(b, c, n)                          -- (B, C, N)
  local out = skd.matmul(v, attn:transpose(2, 3)):reshape(b, c, s[3], s[4])
  return self.gamma * out + x, attn
end

-- The two batched products of B·N·N·(c/8 + c) multiply-adds (the 1×1 convs count apart).
function SelfAttention:macs(out)
  local s = out:size()
  local n = s[3] * s[4]
  return n * n * (self.inner + self.channels)
end

function SelfAttention:extra_repr() return string.format("%d, reduction=%d", self.channels, self.channels // self.inner) end

-- ---------------------------------------------------------------- SpectralNorm

-- x / max(‖x‖, eps), outside the graph.
local function normalize(x, eps)
  local n = (x * x):sum():sqrt():item()
  return x / math.max(n, eps)
end

-- SpectralNorm(module, {eps=1e-12, n_power_iterations=1}) wraps a Conv2d or Linear as
-- PyTorch's torch.nn.utils.spectral_norm does: the module's parameters become bias and
-- weight_orig, the buffers weight_u (out) and weight_v (in·kh·kw) hold the power-iteration
-- vectors, and the weight used is weight_orig / σ with σ = uᵀ W v computed with autograd
-- through W. In training each forward first runs the power iteration (u, v updated in
-- place, outside the graph); `sn.update_u = false` (or nn.power_iteration(model, false))
-- freezes it, so that the holistic loss can evaluate the critic several times with identical
-- weights. In evaluation u and v are left as they are.
local SpectralNorm = Module:extend("SpectralNorm")
A.SpectralNorm = SpectralNorm

function SpectralNorm:__init(m, opts)
  opts = opts or {}
  if not (Module.is_module(m) and m.forward_with and rawget(m, "weight")) then
    error("SpectralNorm: expects a Conv2d or Linear module", 3)
  end
  rawset(self, "module", m) -- not a child: its parameters are re-registered here by name
  self.eps = opts.eps or 1e-12
  self.n_power_iterations = opts.n_power_iterations or 1
  self.update_u = true
  local w = m.weight
  self.out_features = w:size(1)
  self.in_features = w:numel() // self.out_features
  -- PyTorch's order: the module's other parameters stay, weight_orig is appended
  if rawget(m, "bias") then self:param("bias", m.bias) end
  self:param("weight_orig", w)
  self:buffer("weight_u", normalize(skd.randn(self.out_features), self.eps))
  self:buffer("weight_v", normalize(skd.randn(self.in_features), self.eps))
end

-- One power iteration per call: v = normalize(Wᵀu), u = normalize(W v).
function SpectralNorm:power_iteration()
  skd.no_grad(function()
    local wmat = self.weight_orig:detach():reshape(self.out_features, self.in_features)
    local u, v = self.weight_u, self.weight_v
    for _ = 1, self.n_power_iterations do
      v:copy_(normalize(skd.matmul(wmat:transpose(1, 2), u:reshape(self.out_features, 1)), self.eps))
      u:copy_(normalize(skd.matmul(wmat, v:reshape(self.in_features, 1)), self.eps))
    end
  end)
end

-- weight_orig / σ, σ = uᵀ W v (a graph through weight_orig). The graph gets copies of u and
-- v, as PyTorch's does: the next forward updates the buffers in place, possibly before this
-- graph's backward (the holistic term evaluates the critic several times, then backward).
function SpectralNorm:normalized_weight()
  if self.training and self.update_u then self:power_iteration() end
  local w = self.weight_orig
  local wmat = w:reshape(self.out_features, self.in_features)
  local u = self.weight_u:clone():reshape(1, self.out_features)
  local v = self.weight_v:clone():reshape(self.in_features, 1)
  local sigma = skd.matmul(u, skd.matmul(wmat, v)):reshape({})
  return w / sigma, sigma
end

function SpectralNorm:forward(x)
  local w = self:normalized_weight()
  return self.module:forward_with(x, w, self.bias)
end

function SpectralNorm:macs(out)
  return self.module:macs(out)
end

function SpectralNorm:extra_repr()
  local m = self.module
  return m:type() .. "(" .. m:extra_repr() .. ")"
end

-- Sets update_u on every SpectralNorm of a model; returns the previous value of the first.
function A.power_iteration(model, enabled)
  local prev
  model:apply(function(m)
    if getmetatable(m) == SpectralNorm then
      if prev == nil then prev = m.update_u end
      m.update_u = enabled
    end
  end)
  return prev
end

return A
