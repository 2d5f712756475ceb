-- tests/test_pointwise.lua — a frozen 1x1 convolution on its packed weight
-- (core/conv2d_pointwise.c, Conv2d's folded path in lua/skd/nn/layers.lua): the same numbers
-- as skd.conv2d and the folded BatchNorm, a pack that follows every write to the weight,
-- results independent of the thread count, and errors that name the call.
local T = require "harness"
local nn = skd.nn

if not skd._pointwise_available() then
  T.skip("pointwise", "no usable BLIS micro-kernel (or SKD_POINTWISE_PACKED=0)")
  T.done()
  return
end

-- conv → BatchNorm with running statistics away from 0/1, frozen (the BatchNorm folded in)
local function frozen_pair(cin, cout)
  local net = nn.Sequential(nn.Conv2d(cin, cout, 1, {bias = false}), nn.BatchNorm2d(cout))
  local conv, bn = net:children()[1], net:children()[2]
  skd.no_grad(function()
    bn.running_mean:copy_(skd.randn(cout) * 0.5)
    bn.running_var:copy_(skd.rand(cout) + 0.5)
    bn.weight:copy_(skd.randn(cout))
    bn.bias:copy_(skd.randn(cout))
  end)
  net:freeze()
  return net, conv, bn
end

-- what the folded conv must give: conv2d, then the BatchNorm's affine, then + identity, ReLU
local function reference(conv, bn, x, identity, relu)
  local y = skd.conv2d(x, conv.weight, nil, {})
  local s = bn.weight / (bn.running_var + bn.eps):sqrt()
  local b = bn.bias - bn.running_mean * s
  y = y * s:reshape(1, -1, 1, 1) + b:reshape(1, -1, 1, 1)
  if identity then y = y + identity end
  return relu and skd.relu(y) or y
end

local function close(a, b, tol, what)
  local scale = b:abs():max():item() + 1e-6
  local err = (a - b):abs():max():item() / scale
  T.ok(err <= tol, string.format("%s: max error %.3g of the largest value (allowed %g)", what, err, tol))
end

T.test("folded 1x1 conv: the packed path equals conv2d + BatchNorm at edge shapes", function()
  skd.manual_seed(1)
  -- output channels around the micro-kernel's panel width, input channels past one block of
  -- 384, images whose pixels are not a multiple of 32, batches of 1 to 3
  for _, c in ipairs{{1, 5, 8, 8, 1}, {40, 12, 9, 11, 2}, {400, 13, 8, 9, 1}, {64, 256, 16, 32, 1},
                     {3, 30, 10, 10, 3}, {1024, 24, 8, 8, 2}} do
    local cin, cout, h, w, n = table.unpack(c)
    local net, conv, bn = frozen_pair(cin, cout)
    local x = skd.randn(n, cin, h, w)
    local id = skd.randn(n, cout, h, w)
    local what = string.format("%dx%d %dx%d batch %d", cin, cout, h, w, n)
    skd.no_grad(function()
      close(net(x), reference(conv, bn, x), 2e-6, what)
      T.ok(rawget(conv, "_pointwise") ~= nil, what .. ": took the packed path")
      close(conv:forward_folded_relu(x, id), reference(conv, bn, x, id, true), 2e-6, what .. " + identity, ReLU")
      close(conv:forward_folded_relu(x), reference(conv, bn, x, nil, true), 2e-6, what .. " + ReLU")
    end)
  end
end)

T.test("_conv2d_pointwise: a product worked out by hand", function()
  -- x: one image, 2 channels, 1x3 pixels; w: 2 outputs x 2 inputs
  local x = skd.tensor{{{{1, 2, 3}}, {{-1, 0, 1}}}}
  local w = skd.tensor{{1, 2}, {-3, 1}}:reshape(2, 2, 1, 1)
  -- conv: out0 = x0 + 2 x1 = (-1, 2, 5); out1 = -3 x0 + x1 = (-4, -6, -8)
  local y = skd.no_grad(function() return skd._conv2d_pointwise(x, w, nil, nil, nil, nil, false) end)
  T.near(y, skd.tensor{{{{-1, 2, 5}}, {{-4, -6, -8}}}}, 0)
  -- ·(2, -1) + (1, 0) + r, then ReLU: (-1, 5, 11) + r0; (4, 6, 8) + r1
  local r = skd.tensor{{{{0, -10, 1}}, {{-5, 0, 0}}}}
  local z = skd._conv2d_pointwise(x, w, nil, skd.tensor{2, -1}, skd.tensor{1, 0}, r, true)
  T.near(z, skd.tensor{{{{0, 0, 12}}, {{0, 6, 8}}}}, 0)
end)

T.test("the pack follows the weight: every in-place write repacks it", function()
  skd.manual_seed(2)
  local net, conv, bn = frozen_pair(48, 20)
  local x = skd.randn(1, 48, 8, 8)
  local function check(what)
    skd.no_grad(function() close(net(x), reference(conv, bn, x), 2e-6, what) end)
  end
  check("first call")
  local first = rawget(conv, "_pointwise")
  check("second call")
  T.eq(rawget(conv, "_pointwise"), first, "an unchanged weight keeps its pack")
  skd.no_grad(function() conv.weight:copy_(skd.randn(20, 48, 1, 1)) end); check("after copy_")
  T.eq(rawget(conv, "_pointwise"), first, "repacked in place: one pack per module")
  skd.no_grad(function() conv.weight:mul_(-2) end); check("after mul_")
  skd.no_grad(function() conv.weight:add_(skd.ones(20, 48, 1, 1)) end); check("after add_")
  skd.no_grad(function() conv.weight:normal_() end); check("after normal_")
  skd.no_grad(function() conv.weight:uniform_(-1, 1) end); check("after uniform_")
  skd.no_grad(function() conv.weight:set(100, 3, 7, 1, 1) end); check("after set")
  skd.no_grad(function() conv.weight:select(1, 5):fill_(0.25) end); check("after fill_ of a view")
  skd.no_grad(function() conv.weight:relu_() end); check("after relu_")
  local g = skd.randn(20, 48, 1, 1)
  skd._sgd_step(conv.weight, g, nil, 0.1, 0, 0, false, true); check("after an SGD step")
  local m, v = skd.zeros(20, 48, 1, 1), skd.zeros(20, 48, 1, 1)
  skd._adam_step(conv.weight, g, m, v, 0.1, 0.9, 0.999, 1e-8, 0, 1); check("after an Adam step")
  net:load_state_dict(frozen_pair(48, 20):state_dict()); check("after load_state_dict")
  net:train()
  T.eq(rawget(conv, "_pointwise"), nil, "train() drops the pack")
end)

T.test("packed 1x1 conv: the same bits at 1 and 2 threads", function()
  skd.manual_seed(3)
  local net, conv = frozen_pair(96, 50)
  local x, id = skd.randn(2, 96, 20, 13), skd.randn(2, 50, 20, 13)
  local was = skd.threads()
  local out = {}
  for _, n in ipairs{1, 2} do
    skd.threads(n)
    out[n] = skd.no_grad(function() return conv:forward_folded_relu(x, id) end)
  end
  skd.threads(was)
  T.near(out[1], out[2], 0)
end)

T.test("where the packed path does not apply, conv2d still runs (and records gradients)", function()
  skd.manual_seed(4)
  local net, conv, bn = frozen_pair(16, 8)
  -- an input that requires grad, with recording on: the recorded path, gradients reach x
  local x = skd.randn(1, 16, 8, 8, {requires_grad = true})
  local y = net(x)
  close(y, reference(conv, bn, x:detach()), 2e-6, "recorded")
  y:sum():backward()
  T.ok(x.grad ~= nil, "the gradient reached the input")
  -- a non-contiguous input, a small image (a pyramid stage), a strided 1x1 conv
  skd.no_grad(function()
    local xt = skd.randn(1, 16, 8, 8):transpose(3, 4)
    close(net(xt), reference(conv, bn, xt:contiguous()), 2e-6, "non-contiguous")
    local small = skd.randn(2, 16, 3, 3)
    close(net(small), reference(conv, bn, small), 2e-6, "3x3 image")
  end)
end)

T.test("a trainable bias, a weight made trainable again, a non-contiguous weight: conv2d's path", function()
  skd.manual_seed(7)
  local conv = nn.Conv2d(16, 8, 1)
  conv:eval()
  conv.weight:requires_grad(false)             -- bias-only fine-tuning
  local x = skd.randn(1, 16, 8, 8)
  local y = conv(x)
  T.ok(y.requires_grad_, "the output records the bias's gradient")
  y:sum():backward()
  T.near(conv.bias.grad, skd.full({8}, 64), 0)  -- d(sum)/d(bias) = pixels
  conv.bias:requires_grad(false)
  skd.no_grad(function() return conv(x) end)
  T.ok(rawget(conv, "_pointwise") ~= nil, "all frozen: packed")
  conv.weight:requires_grad(true)
  local z = conv(x)
  T.ok(z.requires_grad_ and rawget(conv, "_pointwise") == nil, "trainable again: recorded, pack dropped")
  -- a weight that is a transposed view (assigned by hand) falls back instead of failing
  local c2 = nn.Conv2d(8, 8, 1, {bias = false})
  c2:eval()
  rawset(c2, "weight", skd.randn(8, 8, 1, 1):transpose(1, 2))
  T.ok(not c2.weight:is_contiguous())
  local x8 = skd.randn(1, 8, 8, 8)
  T.near(skd.no_grad(function() return c2(x8) end), skd.conv2d(x8, c2.weight, nil, {}), 0)
end)

T.test("a weight rewritten before every forward (an EMA teacher) holds one pack, not one per step", function()
  skd.manual_seed(8)
  local net, conv = frozen_pair(512, 512)
  local x = skd.randn(1, 512, 8, 8)
  skd.no_grad(function() net(x) end)
  collectgarbage(); collectgarbage()
  local base = skd.memory().in_use
  skd.no_grad(function()
    for _ = 1, 30 do
      conv.weight:mul_(0.99)
      net(x)
    end
  end)
  local grown = skd.memory().in_use - base
  T.ok(grown < 2^19, string.format("in use grew by %.2f MB over 30 rewrites (a pack is 1 MB)", grown / 2^20))
end)

T.test("flatten after a forward: the old weights are not kept alive by the packs", function()
  skd.manual_seed(9)
  local x = skd.randn(1, 512, 8, 8)
  -- what flattening adds (the buffers) for a network that never ran, and for one whose
  -- forward made a pack: the same, the old 1 MB weight is not held by the pack
  local function growth(run_first)
    local net, conv, bn = frozen_pair(512, 512)
    if run_first then skd.no_grad(function() net(x) end) end
    collectgarbage(); collectgarbage()
    local before = skd.memory().in_use
    net:flat_parameters()
    collectgarbage(); collectgarbage()
    local grown = skd.memory().in_use - before
    skd.no_grad(function() close(net(x), reference(conv, bn, x), 2e-6, "after flatten") end)
    return grown, net
  end
  local cold, keep1 = growth(false)
  local warm, keep2 = growth(true)
  T.ok(math.abs(warm - cold) < 2^18, string.format("flatten after a forward held %.2f MB more than before one",
    (warm - cold) / 2^20))
end)

T.test("_conv2d_pointwise: bad arguments are named", function()
  local w = skd.randn(4, 6, 1, 1)
  local x = skd.randn(1, 6, 8, 8)
  T.raises(function() skd._conv2d_pointwise(skd.randn(1, 5, 8, 8), w) end,
    "conv2d_pointwise: expects a contiguous float32 input (N, 6, H, W), got float32 1x5x8x8")
  T.raises(function() skd._conv2d_pointwise(x, skd.randn(4, 6, 3, 3)) end,
    "conv2d_pointwise: expects a contiguous float32 weight (Cout, Cin, 1, 1), got float32 4x6x3x3")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, 2.0) end, "tensor expected")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, nil, {1, 2}) end, "tensor expected")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, nil, nil, "junk") end, "tensor expected")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, skd.ones(4, {requires_grad = true})) end,
    "not with a scale that requires grad")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, skd.ones(3)) end,
    "conv2d_pointwise: expects scale of shape (4)")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, nil, nil, skd.randn(1, 4, 8, 7)) end,
    "expects a residual of the output's shape 1x4x8x8, contiguous float32, got float32 1x4x8x7")
  T.raises(function() skd._conv2d_pointwise(skd.randn(1, 6, 8, 8, {requires_grad = true}), w) end,
    "records no gradient")
  T.raises(function() skd._conv2d_pointwise(x, w, "pack") end, "skd.PointwisePack expected")
  T.raises(function() skd._conv2d_pointwise(x, w, nil, nil, nil, nil, 1) end, "boolean expected")
end)

T.test("frozen bottleneck ResNet: the packs inside the whole network, what they cost, train() frees them", function()
  skd.manual_seed(5)
  local net = skd.models.resnet{depth = 50, width = 0.25, output_stride = 8}
  net:eval()
  local x = skd.randn(1, 3, 64, 64)
  local want = skd.no_grad(function() return net(x) end)
  net:freeze()
  local got = skd.no_grad(function() return net(x) end) -- the first forward makes the packs
  close(got, want, 1e-5, "frozen ResNet-50 (width 0.25) against the unfolded eval forward")
  collectgarbage(); collectgarbage()
  local with = skd.memory().in_use
  local packed, bytes = 0, 0
  for _, m in ipairs(net:modules()) do
    if rawget(m, "_pointwise") then packed = packed + 1; bytes = bytes + 4 * m.weight:numel() end
  end
  T.ok(packed > 0, "some 1x1 convolutions took the packed path")
  net:train()
  collectgarbage(); collectgarbage()
  local freed = with - skd.memory().in_use
  -- panels round the output channels up to the micro-kernel's width (at most 2x for a
  -- 1x1 conv of few channels at width 0.25)
  T.ok(freed >= bytes and freed <= 2 * bytes, string.format("%d packs: %.2f MB freed for %.2f MB of weights",
    packed, freed / 2^20, bytes / 2^20))
end)

T.done()
