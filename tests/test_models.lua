-- skd.models: torchvision's parameter counts and names, output shapes at odd sizes for every
-- network, finite-difference checks through a residual block and the pyramid pooling,
-- BatchNorm folding, the critic at any size, taps, error paths and the summary table.
local T = require "harness"
local nn, models = skd.nn, skd.models
skd.manual_seed(11)

local shape = T.shape
local x97 = skd.randn(1, 3, 97, 129)

-- Random BatchNorm statistics and affine parameters, so that folding and eval mode matter.
local function randomise_bn(m)
  skd.no_grad(function()
    for _, mod in ipairs(m:modules()) do
      if getmetatable(mod) == nn.BatchNorm2d then
        local c = mod.num_features
        mod.running_mean:copy_(skd.randn(c) * 0.2)
        mod.running_var:copy_(skd.rand(c) + 0.5)
        mod.weight:copy_(skd.rand(c) + 0.5)
        mod.bias:copy_(skd.randn(c) * 0.1)
      end
    end
  end)
end

T.test("resnet parameter counts are torchvision's exactly", function()
  local want = {[18] = 11689512, [34] = 21797672, [50] = 25557032, [101] = 44549160}
  for _, d in ipairs({18, 34, 50, 101}) do
    local m = models.resnet{depth = d, num_classes = 1000, init = false}
    T.eq(m:num_parameters(), want[d], "resnet" .. d)
    T.eq(m:flat_parameters():numel(), want[d], "resnet" .. d .. " flat buffer")
  end
end)

T.test("resnet18 state dict names are torchvision's", function()
  local m = models.resnet{depth = 18, num_classes = 1000, init = false}
  local keys = m:state_dict_keys()
  T.eq(#keys, 122) -- 62 parameters + 20 BatchNorms × 3 buffers
  local first = {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
    "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn1.weight"}
  for i, k in ipairs(first) do T.eq(keys[i], k) end
  T.eq(keys[121], "fc.weight")
  T.eq(keys[122], "fc.bias")
  local sd = m:state_dict()
  local known = {
    ["layer1.1.conv2.weight"] = "64x64x3x3", ["layer2.0.conv1.weight"] = "128x64x3x3",
    ["layer2.0.downsample.0.weight"] = "128x64x1x1", ["layer2.0.downsample.1.running_var"] = "128",
    ["layer3.0.downsample.1.num_batches_tracked"] = "", ["layer4.1.bn2.bias"] = "512",
    ["layer4.0.downsample.0.weight"] = "512x256x1x1", ["fc.weight"] = "1000x512", ["fc.bias"] = "1000",
  }
  for k, s in pairs(known) do
    T.ok(sd[k] ~= nil, "missing " .. k)
    T.eq(shape(sd[k]), s, k)
  end
  T.eq(sd["layer1.0.downsample.0.weight"], nil)
  T.eq(sd["layer3.0.downsample.1.num_batches_tracked"]:dtype(), "int32")
end)

T.test("resnet18 output shapes at 3x97x129, output stride 32/16/8", function()
  local m = models.resnet{depth = 18}
  local y4, y3 = m(x97)
  T.eq(shape(y4), "1x512x4x5")
  T.eq(shape(y3), "1x256x7x9")
  for os, want in pairs({[16] = {"1x128x7x9", "1x64x7x9"}, [8] = {"1x128x13x17", "1x64x13x17"}}) do
    local n = models.resnet{depth = 18, width = 0.25, output_stride = os}
    local a, b = n(x97)
    T.eq(shape(a), want[1], "os" .. os)
    T.eq(shape(b), want[2], "os" .. os .. " layer3")
  end
  local c = models.resnet{depth = 18, width = 0.25, num_classes = 10}
  T.eq(shape(c(skd.randn(2, 3, 97, 129))), "2x10")
end)

T.test("dilation follows the PSPNet/DeepLab scheme (first block of a stage: half)", function()
  local m = models.resnet{depth = 18, width = 0.25, output_stride = 8, init = false}
  T.eq(m.layer3:at(1).conv1.dilation[1], 1)
  T.eq(m.layer3:at(1).conv1.stride[1], 1)
  T.eq(m.layer3:at(2).conv1.dilation[1], 2)
  T.eq(m.layer4:at(1).conv1.dilation[1], 2)
  T.eq(m.layer4:at(2).conv2.dilation[1], 4)
  T.eq(m.layer4:at(2).conv2.padding[1], 4)
  T.eq(m.layer4:at(1).downsample:at(1).stride[1], 1, "stride-1 downsample in a dilated stage")
  local b = models.resnet{depth = 50, width = 0.25, output_stride = 16, init = false}
  T.eq(b.layer3:at(1).conv2.stride[1], 2)
  T.eq(b.layer4:at(1).conv2.dilation[1], 1)
  T.eq(b.layer4:at(3).conv2.dilation[1], 2)
end)

T.test("resnet50 output shapes at 3x97x129, output stride 32/16/8", function()
  local want = {[32] = {"1x512x4x5", "1x256x7x9"}, [16] = {"1x512x7x9", "1x256x7x9"}, [8] = {"1x512x13x17", "1x256x13x17"}}
  for _, os in ipairs({32, 16, 8}) do
    local n = models.resnet{depth = 50, width = 0.25, output_stride = os}
    local a, b = n(x97)
    T.eq(shape(a), want[os][1], "os" .. os)
    T.eq(shape(b), want[os][2], "os" .. os .. " layer3")
  end
end)

T.test("deep stem: three 3x3 convolutions (64, 64, 128), authors' names", function()
  local m = models.resnet{depth = 18, deep_stem = true, num_classes = 1000, init = false}
  T.eq(shape(m.conv1.weight), "64x3x3x3")
  T.eq(shape(m.conv2.weight), "64x64x3x3")
  T.eq(shape(m.conv3.weight), "128x64x3x3")
  T.eq(shape(m.bn3.running_mean), "128")
  T.eq(shape(m.layer1:at(1).conv1.weight), "64x128x3x3")
  T.eq(shape(m.layer1:at(1).downsample:at(1).weight), "64x128x1x1")
  local h = models.resnet{depth = 18, width = 0.5, deep_stem = true, output_stride = 8}
  T.eq(shape(h.conv3.weight), "64x32x3x3")
  T.eq(shape((h(x97))), "1x256x13x17")
end)

T.test("pspnet teacher and student: logits, aux and feat at stride 8", function()
  local teacher = models.pspnet{backbone = {depth = 50, width = 0.25, deep_stem = true}, num_classes = 19,
    head_channels = 512}
  -- the teacher runs frozen (evaluation mode); always_aux asks for the aux head there too
  teacher:eval()
  teacher.always_aux = true
  local out = teacher(x97)
  T.eq(shape(out.logits), "1x19x13x17")
  T.eq(shape(out.aux), "1x19x13x17")
  T.eq(shape(out.feat), "1x512x13x17")
  T.eq(shape(teacher.ppm.stages:at(1):at(2).weight), "128x512x1x1", "PPM reduces to C_in/4")
  T.eq(shape(teacher.head:at(1).weight), "512x1024x3x3")
  T.eq(shape(teacher.aux:at(1).weight), "256x256x3x3")
  local student = models.pspnet{backbone = {depth = 18, width = 0.5, deep_stem = true}, num_classes = 11,
    head_channels = 128}
  out = student(skd.randn(2, 3, 97, 129))
  T.eq(shape(out.logits), "2x11x13x17")
  T.eq(shape(out.aux), "2x11x13x17")
  T.eq(shape(out.feat), "2x128x13x17")
  student:eval()
  out = student(x97)
  T.eq(out.aux, nil, "aux only in training")
  T.eq(shape(out.logits), "1x11x13x17")
  student:tap("backbone.layer4")
  student:tap("head")
  student(x97)
  T.eq(shape(student:tap("backbone.layer4")), "1x256x13x17")
  T.eq(shape(student:tap("head")), "1x128x13x17", "the head's output is feat")
  local noaux = models.pspnet{backbone = {depth = 18, width = 0.25}, num_classes = 3, aux = false, init = false}
  T.eq(rawget(noaux, "aux"), nil)
end)

T.test("pspnet parameter names and the paper-size teacher's count", function()
  local keys = models.pspnet{backbone = {depth = 18, width = 0.25}, num_classes = 5, init = false}:state_dict_keys()
  local have = {}
  for _, k in ipairs(keys) do have[k] = true end
  for _, k in ipairs({"backbone.conv1.weight", "backbone.layer4.1.bn2.running_var", "ppm.stages.0.1.weight",
    "ppm.stages.3.2.num_batches_tracked", "head.0.weight", "head.1.bias", "classifier.weight", "classifier.bias",
    "aux.0.weight", "aux.1.running_mean", "aux.4.weight", "aux.4.bias"}) do
    T.ok(have[k], "missing " .. k)
  end
  -- PSPNet-ResNet101 with the deep stem, 19 classes: method.md §4 quotes ≈70.4 M (the
  -- authors' head has 512-channel pyramid stages; this one, as method.md specifies, C_in/4)
  local n = models.pspnet{backbone = {depth = 101, deep_stem = true}, num_classes = 19, init = false}:num_parameters()
  T.ok(n > 65e6 and n < 72e6, "teacher parameters " .. n)
end)

T.test("discriminator: one score per image at any size, both conditions", function()
  local D = models.discriminator{num_classes = 19}
  T.eq(D.in_channels, 22)
  T.eq(D:num_parameters(), 3194755)
  T.eq(shape(D(skd.randn(1, 22, 64, 64))), "1")
  D = models.discriminator{num_classes = 19, width = 16}
  for _, hw in ipairs({{8, 12}, {13, 17}, {16, 16}, {64, 64}, {97, 129}}) do
    local y = D(skd.randn(2, 22, hw[1], hw[2]))
    T.eq(shape(y), "2", hw[1] .. "x" .. hw[2])
  end
  local z, img = skd.randn(2, 19, 13, 17), skd.rand(2, 3, 97, 129)
  local input = D:prepare(z, img)
  T.eq(shape(input), "2x22x13x17")
  T.near(input:narrow(2, 1, 19):sum(2), skd.ones(2, 13, 17), 1e-5, "softmax over classes")
  local L = models.discriminator{num_classes = 19, condition = "logits", width = 16}
  T.eq(L.in_channels, 19)
  T.eq(shape(L.preprocess.weight), "19")
  T.eq(L:prepare(z), z)
  T.eq(shape(L(z)), "2")
  T.raises(function() D(z) end, "expects (B, 22, h, w), got 2x19x13x17")
  T.raises(function() models.discriminator{num_classes = 3, condition = "nope"} end, "condition must be")
  local keys = table.concat(D:state_dict_keys(), " ")
  for _, k in ipairs({"l1.0.weight_orig", "l1.0.bias", "l1.0.weight_u", "l1.0.weight_v", "attn1.gamma",
    "attn2.query_conv.weight", "l4.0.weight_orig", "last.weight", "last.bias"}) do
    T.ok(keys:find(k, 1, true), "missing " .. k)
  end
end)

T.test("discriminator: the 4x4 and the pooled last layer agree on a constant map", function()
  local D = models.discriminator{num_classes = 2, width = 8}
  D:eval()
  -- the last layer's two paths on the same constant 512-channel map
  local c = skd.randn(1, 64, 1, 1)
  local four = D.last(c:expand(1, 64, 4, 4):contiguous()):reshape(1)
  local pooled = skd.matmul(c:reshape(1, 64), D.last.weight:sum(4):sum(3):transpose(1, 2)) + D.last.bias
  T.near(four, pooled:reshape(1), 1e-4)
  -- the input gradient the gradient penalty needs reaches the input at every size
  for _, hw in ipairs({{10, 10}, {64, 64}, {40, 56}}) do
    local x = skd.randn(2, 5, hw[1], hw[2]):requires_grad()
    D(x):sum():backward()
    T.eq(shape(x.grad), shape(x))
    T.ok(x.grad:abs():sum():item() > 0)
  end
end)

-- Central differences across a ReLU kink are wrong by O(slope) (BatchNorm in training puts
-- many pre-activations near 0, and a 1e-2 step of a weight moves all of them), so the block
-- checks below run with the ReLU module swapped for a smooth x·sigmoid(x): what they check
-- is the wiring — convolutions, BatchNorm, downsample, the residual sum. ReLU's own gradient
-- is checked in test_autograd.lua; the same blocks with ReLU pass at most seeds.
local Smooth = nn.Module:extend("Smooth")
function Smooth:forward(x) return x * skd.sigmoid(x) end

T.test("gradcheck through a residual block (BasicBlock with downsample, training BN)", function()
  local ds = nn.Sequential{nn.Conv2d(3, 4, 1, {stride = 2, bias = false}), nn.BatchNorm2d(4)}
  local blk = models.BasicBlock(3, 4, 2, 1, ds)
  rawset(blk, "relu", Smooth())
  local x = skd.randn(2, 3, 6, 6):requires_grad()
  T.gradcheck(function(xx) return blk(xx) end, {x, blk.conv1.weight, blk.bn2.weight, ds:at(1).weight},
    {eps = 1e-2, atol = 3e-3, rtol = 3e-2, max_checks = 24})
end)

T.test("gradcheck through a Bottleneck (dilated, eval BN)", function()
  local blk = models.Bottleneck(8, 2, 1, 2)
  rawset(blk, "relu", Smooth())
  randomise_bn(blk)
  blk:eval()
  local x = skd.randn(1, 8, 5, 5):requires_grad()
  T.gradcheck(function(xx) return blk(xx) end, {x, blk.conv2.weight, blk.conv3.weight},
    {eps = 1e-2, atol = 3e-3, rtol = 3e-2, max_checks = 24})
end)

T.test("gradcheck through the pyramid pooling module (tiny channels)", function()
  local ppm = models.PyramidPooling(8, {1, 2, 3, 6})
  for i = 1, 4 do rawset(ppm.stages:at(i), "3", Smooth()) end -- each stage's ReLU (see above)
  randomise_bn(ppm)
  ppm:eval()
  T.eq(ppm.out_channels, 16)
  local x = skd.randn(1, 8, 7, 9):requires_grad()
  T.eq(shape(ppm(x)), "1x16x7x9")
  T.gradcheck(function(xx) return ppm(xx) end, {x, ppm.stages:at(2):at(2).weight, ppm.stages:at(4):at(3).bias},
    {eps = 1e-2, atol = 3e-3, rtol = 3e-2, max_checks = 30})
end)

T.test("freeze folds every BatchNorm of a ResNet and a PSPNet within 1e-4", function()
  local m = models.pspnet{backbone = {depth = 18, width = 0.25, deep_stem = true}, num_classes = 5, head_channels = 16}
  randomise_bn(m)
  m:eval()
  m.always_aux = true
  local x = skd.randn(2, 3, 41, 53)
  local want = m(x)
  local keys = table.concat(m:state_dict_keys(), " ")
  local sd0 = m:state_dict()
  m:freeze()
  local bns, folded = 0, 0
  for _, mod in ipairs(m:modules()) do
    if getmetatable(mod) == nn.BatchNorm2d then
      bns = bns + 1
      if rawget(mod, "_folded") then folded = folded + 1 end
    end
  end
  T.eq(folded, bns, "every BatchNorm folded")
  T.eq(bns, 23 + 4 + 1 + 1) -- stem 3, blocks 16, downsample 4 (deep stem: layer1 too); PPM 4, head, aux
  local got = m(x)
  T.near(got.logits, want.logits, 1e-4)
  T.near(got.aux, want.aux, 1e-4)
  T.near(got.feat, want.feat, 1e-4)
  T.eq(got.logits.grad_fn, nil, "a frozen network records nothing")
  T.eq(table.concat(m:state_dict_keys(), " "), keys)
  T.near(m:state_dict()["backbone.layer2.0.conv1.weight"], sd0["backbone.layer2.0.conv1.weight"], 0)
  for _, p in ipairs(m:parameters()) do T.eq(p.requires_grad_, false) end
end)

T.test("freeze: a Bottleneck ResNet's fused conv → BN → (sum →) ReLU equals evaluation mode", function()
  local m = models.resnet{depth = 50, width = 0.125, output_stride = 8}
  randomise_bn(m)
  m:eval()
  local x = skd.randn(1, 3, 33, 47)
  local want = m(x)
  local tol = 1e-5 * math.max(1, skd.max(skd.abs(want)):item()) -- outputs reach the hundreds
  m:freeze()
  T.near(m(x), want, tol, "fused, no gradient recorded")
  -- a tapped conv keeps the unfused path, so its tap sees its own output (BN folded in)
  m:tap("layer1.0.conv3")
  T.near(m(x), want, tol, "tapped")
  local t = m:tap("layer1.0.conv3")
  T.ok(t ~= nil and (-t):max():item() > 0, "the tapped conv's output, before the ReLU")
  m:untap("layer1.0.conv3")
  -- fused or not, every module is a module call: the summary lists all of them, errors name
  -- the module
  local rows, tot = models.summary(m, {input = {3, 33, 47}, print = false})
  m:unfreeze(); m:eval()
  local rows_eval, tot_eval = models.summary(m, {input = {3, 33, 47}, print = false})
  T.eq(#rows, #rows_eval, "summary rows, frozen vs eval")
  T.eq(tot.macs, tot_eval.macs, "summary mult-adds, frozen vs eval")
  m:freeze()
  T.raises(function() skd.no_grad(function() return m(skd.randn(1, 4, 33, 47)) end) end,
    "conv1 (Conv2d): conv2d: weight expects 3 input channels")
  T.raises(function() skd.no_grad(function() return m(skd.randn(1, 3, 33, 47):narrow(2, 1, 2)) end) end,
    "conv1 (Conv2d): conv2d: weight expects 3 input channels")
  -- an input that asks for a gradient: the frozen blocks record the same values on the tape
  local xg = x:clone():requires_grad(true)
  local got = m(xg)
  T.near(got, want, tol, "with a gradient recorded")
  got:sum():backward()
  T.ok(xg.grad ~= nil, "the gradient reaches the input through the frozen blocks")
end)

T.test("resnet weights move between instances through the state dict", function()
  local a = models.resnet{depth = 18, width = 0.25, output_stride = 8}
  local b = models.resnet{depth = 18, width = 0.25, output_stride = 8, init = false}
  randomise_bn(a)
  b:load_state_dict(a:state_dict())
  a:eval(); b:eval()
  T.near((b(x97)), (a(x97)), 0)
end)

T.test("a failing forward names the path through the model", function()
  local m = models.pspnet{backbone = {depth = 18, width = 0.25}, num_classes = 3, init = false}
  T.raises(function() m(skd.randn(1, 4, 33, 33)) end,
    "backbone.conv1 (Conv2d): conv2d: weight expects 3 input channels, input has 4")
end)

T.test("summary: layers, output shapes, parameters and multiply-adds", function()
  local m = models.resnet{depth = 18, num_classes = 1000, init = false}
  local rows, total = models.summary(m, {input = {3, 224, 224}, print = false})
  T.eq(total.params, 11689512)
  T.eq(rows[1].name, "conv1")
  T.eq(rows[1].output, "1x64x112x112")
  T.eq(rows[1].macs, 64 * 112 * 112 * 3 * 49)
  T.eq(rows[1].params, 9408)
  T.eq(rows[#rows].name, "fc")
  T.eq(rows[#rows].macs, 512 * 1000)
  -- ResNet-18's well-known 1.82 G multiply-adds at 224x224
  T.ok(math.abs(total.macs - 1.814e9) / 1.814e9 < 0.01, "macs " .. total.macs)
  T.ok(m.training, "summary restores the mode")
  local s = models.summary(models.discriminator{num_classes = 2, width = 8}, {input = {5, 64, 64}, print = false})
  local names = {}
  for _, r in ipairs(s) do names[#names + 1] = r.name end
  T.ok(table.concat(names, " "):find("attn1 ", 1, true), "attention rows")
end)

T.test("without autograd the blocks' ReLUs and residual sums run in place: same outputs, taps intact", function()
  local net = models.resnet{depth = 50, width = 0.25, output_stride = 8}
  randomise_bn(net)
  net:eval()
  local x = skd.randn(1, 3, 32, 32)
  local want = net(x)                                           -- recorded: out-of-place path
  local got = skd.no_grad(function() return net(x) end)         -- in place
  T.near(got, want, 0)
  local blk = net:get("layer1.0")
  local bn3 = net:tap("layer1.0.bn3")
  skd.no_grad(function() return net(x) end)
  local tapped = net:tap("layer1.0.bn3")
  T.ok((-tapped):max():item() > 0, "the tapped BatchNorm output still has its negative values")
  net:untap("layer1.0.bn3")
  T.ok(blk ~= nil and bn3 == nil)
end)

T.done()
