-- skd.nn — modules with named parameters, PyTorch state dicts and printing (design.md).
--
--   local nn = skd.nn
--   local net = nn.Sequential{nn.Conv2d(3, 16, 3, {padding = 1, bias = false}), nn.BatchNorm2d(16), nn.ReLU()}
--   net:flatten()                       -- parameters and gradients in one buffer each
--   local y = net(x)                    -- forward; net:eval(), net:train()
--   net:state_dict()["0.weight"]        -- PyTorch's names
--   print(net)                          -- the tree with parameter counts
--
-- Module (lua/skd/nn/module.lua), the layers (layers.lua), SelfAttention and SpectralNorm
-- (attention.lua), freeze/BatchNorm folding (fold.lua).
local Module = require "skd.nn.module"
local layers = require "skd.nn.layers"
local attention = require "skd.nn.attention"
require "skd.nn.fold"

local nn = {Module = Module, is_module = Module.is_module}

for _, name in ipairs({"Conv2d", "BatchNorm2d", "ReLU", "LeakyReLU", "Identity", "MaxPool2d",
  "AvgPool2d", "AdaptiveAvgPool2d", "Upsample", "Dropout2d", "Linear", "Sequential", "ModuleList"}) do
  nn[name] = layers[name]
end
nn.SelfAttention = attention.SelfAttention
nn.SpectralNorm = attention.SpectralNorm
nn.power_iteration = attention.power_iteration
nn.uniform = layers.uniform
nn.no_init = layers.no_init
nn.init_enabled = layers.init_enabled

return nn
