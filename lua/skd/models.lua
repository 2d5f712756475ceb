-- skd.models — the networks of the method (method.md §3–§4):
--   skd.models.resnet{depth=18|34|50|101, width=1.0, output_stride=32|16|8, deep_stem=false, num_classes=nil}
--   skd.models.pspnet{backbone={depth, width, deep_stem, output_stride=8}, num_classes, bins={1,2,3,6},
--                     head_channels=512|128, aux=true}          -> forward: {logits=, aux=, feat=}
--   skd.models.discriminator{num_classes, condition="image"|"logits", width=64}  -> forward: (B) scores
--   skd.models.summary(m, {input={3,H,W}})                      -> rows, totals (and prints them)
-- Each constructor returns the network with its parameters in one flat buffer (flatten=false
-- to skip). m:freeze() (skd.nn) prepares a teacher: eval, no grad, BatchNorm folded.
local resnet = require "skd.models.resnet"
local pspnet = require "skd.models.pspnet"
local discriminator = require "skd.models.discriminator"

return {
  resnet = resnet.resnet,
  pspnet = pspnet.pspnet,
  discriminator = discriminator.discriminator,
  summary = require "skd.models.summary",
  ResNet = resnet.ResNet,
  BasicBlock = resnet.BasicBlock,
  Bottleneck = resnet.Bottleneck,
  PSPNet = pspnet.PSPNet,
  PyramidPooling = pspnet.PPM,
  Discriminator = discriminator.Discriminator,
}
