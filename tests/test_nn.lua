-- skd.nn: module bookkeeping (names, order, modes, state dicts, flat buffers, taps, error
-- paths, printing), the layers against the functional ops and hand-worked values,
-- SelfAttention and SpectralNorm by hand and by finite differences, BatchNorm folding.
local T = require "harness"
local nn = skd.nn
skd.manual_seed(7)

local shape = T.shape

-- A small two-level network used by several tests.
local Block = nn.Module:extend("Block")
function Block:__init(c)
  self.conv = nn.Conv2d(c, c, 3, {padding = 1, bias = false})
  self.bn = nn.BatchNorm2d(c)
end
function Block:forward(x) return skd.relu(self.bn(self.conv(x))) + x end

local Net = nn.Module:extend("Net")
function Net:__init()
  self.stem = nn.Conv2d(3, 4, 3, {padding = 1})
  self.block = Block(4)
  self:param("scale", skd.ones(1))
  self.head = nn.Sequential{nn.Conv2d(4, 2, 1), nn.ReLU()}
end
function Net:forward(x) return self.head(self.block(self.stem(x)) * self.scale) end

T.test("parameters, buffers and children in definition order with dotted names", function()
  local net = Net()
  local names = {}
  for name, p in net:named_parameters() do names[#names + 1] = name .. ":" .. shape(p) end
  T.eq(table.concat(names, " "), "scale:1 stem.weight:4x3x3x3 stem.bias:4 block.conv.weight:4x4x3x3 " ..
    "block.bn.weight:4 block.bn.bias:4 head.0.weight:2x4x1x1 head.0.bias:2")
  local bufs = {}
  for _, e in ipairs(net:named_buffers()) do bufs[#bufs + 1] = e[1] end
  T.eq(table.concat(bufs, " "), "block.bn.running_mean block.bn.running_var block.bn.num_batches_tracked")
  T.eq(#net:parameters(), 8)
  T.eq(#net:buffers(), 3)
  T.eq(net:num_parameters(), 1 + 108 + 4 + 144 + 4 + 4 + 8 + 2)
  local kids = {}
  for name in net:named_children() do kids[#kids + 1] = name end
  T.eq(table.concat(kids, " "), "stem block head")
  local mods = {}
  for name, m in net:named_modules() do mods[#mods + 1] = name .. "=" .. m:type() end
  T.eq(table.concat(mods, " "), "=Net stem=Conv2d block=Block block.conv=Conv2d block.bn=BatchNorm2d " ..
    "head=Sequential head.0=Conv2d head.1=ReLU")
  T.eq(net:get("head.0"), net.head:at(1))
  T.raises(function() net:get("head.7") end, "no module 'head.7'", "children: 0, 1")
  for _, p in ipairs(net:parameters()) do T.ok(p.requires_grad_, "parameters require grad") end
  local seen = 0
  net:apply(function() seen = seen + 1 end)
  T.eq(seen, 8)
end)

T.test("registering a name twice is an error", function()
  local m = nn.Conv2d(1, 1, 1)
  T.raises(function() m:param("weight", skd.zeros(1)) end, "'weight' is already registered")
  T.raises(function() m:add("a.b", nn.ReLU()) end, "without dots")
  T.raises(function() m:add("eval", nn.ReLU()) end, "'eval' would hide the method")
end)

T.test("train() and eval() reach every module", function()
  local net = Net()
  net:eval()
  for _, m in ipairs(net:modules()) do T.eq(m.training, false) end
  net:train()
  for _, m in ipairs(net:modules()) do T.eq(m.training, true) end
end)

T.test("Conv2d: PyTorch's default initialisation bounds and the functional op", function()
  local c = nn.Conv2d(16, 32, 3, {stride = 2, padding = 1, dilation = 1})
  local bound = 1 / math.sqrt(16 * 9)
  T.ok(c.weight:abs():max():item() <= bound, "weight within 1/sqrt(fan_in)")
  T.ok(c.weight:abs():max():item() > 0.9 * bound, "weight fills its range")
  T.ok(math.abs(c.weight:mean():item()) < 0.1 * bound, "weight centred")
  T.ok(c.bias:abs():max():item() <= bound, "bias within 1/sqrt(fan_in)")
  local x = skd.randn(2, 16, 9, 11)
  T.near(c(x), skd.conv2d(x, c.weight, c.bias, {stride = 2, padding = 1}), 0)
  T.eq(shape(c(x)), "2x32x5x6")
  local g = nn.Conv2d(4, 8, 3, {groups = 2, bias = false, dilation = 2, padding = 2})
  T.eq(shape(g.weight), "8x2x3x3")
  T.eq(g.bias, nil)
  T.raises(function() nn.Conv2d(3, 8, 3, {groups = 2}) end, "divide into 2 groups")
end)

T.test("Linear: y = x Wᵀ + b by hand", function()
  local l = nn.Linear(3, 2)
  skd.no_grad(function()
    l.weight:copy_(skd.tensor({{1, 2, 3}, {-1, 0, 1}}))
    l.bias:copy_(skd.tensor({0.5, -0.5}))
  end)
  T.near(l(skd.tensor({{1, 1, 1}, {2, 0, -1}})), {{6.5, -0.5}, {-0.5, -3.5}}, 1e-6)
end)

T.test("BatchNorm2d: batch statistics in training, running ones in eval, counter", function()
  local bn = nn.BatchNorm2d(2, {momentum = 0.5})
  local x = skd.tensor({{{{1, 3}}, {{0, 0}}}, {{{5, 7}}, {{2, 2}}}}) -- 2x2x1x2
  local y = bn(x)
  -- channel 1: values 1,3,5,7: mean 4, biased var 5
  T.near(y:select(2, 1):reshape(-1), {-3 / math.sqrt(5 + 1e-5), -1 / math.sqrt(5 + 1e-5),
    1 / math.sqrt(5 + 1e-5), 3 / math.sqrt(5 + 1e-5)}, 1e-5)
  -- running: 0.5·0 + 0.5·mean; var unbiased 20/3 for channel 1, 4/3 for channel 2
  T.near(bn.running_mean, {2, 0.5}, 1e-6)
  T.near(bn.running_var, {0.5 + 0.5 * 20 / 3, 0.5 + 0.5 * 4 / 3}, 1e-5)
  T.eq(bn.num_batches_tracked:item(), 1)
  T.eq(bn.num_batches_tracked:dtype(), "int32")
  bn(x)
  T.eq(bn.num_batches_tracked:item(), 2)
  bn:eval()
  local rm, rv = bn.running_mean:clone(), bn.running_var:clone()
  local ye = bn(x)
  T.near(ye:select(2, 2):reshape(-1), ((skd.tensor({0, 0, 2, 2}) - rm:get(2)) / math.sqrt(rv:get(2) + 1e-5)), 1e-5)
  T.eq(bn.num_batches_tracked:item(), 2, "eval leaves the counter")
  T.near(bn.running_mean, rm, 0)
end)

T.test("activations, pooling, upsampling and dropout modules", function()
  local x = skd.randn(2, 3, 9, 13)
  T.near(nn.ReLU()(x), skd.relu(x), 0)
  T.near(nn.LeakyReLU(0.1)(x), x:leaky_relu(0.1), 0)
  T.eq(nn.Identity()(x), x)
  T.eq(shape(nn.MaxPool2d(3, {stride = 2, padding = 1})(x)), "2x3x5x7")
  T.eq(shape(nn.MaxPool2d(2, {ceil_mode = true})(x)), "2x3x5x7")
  T.eq(shape(nn.AvgPool2d(2)(x)), "2x3x4x6")
  T.eq(shape(nn.AdaptiveAvgPool2d({2, 3})(x)), "2x3x2x3")
  T.near(nn.AdaptiveAvgPool2d(1)(x):reshape(2, 3), x:mean(4):mean(3), 1e-5)
  T.eq(shape(nn.Upsample{size = {17, 25}, align_corners = true}(x)), "2x3x17x25")
  T.eq(shape(nn.Upsample{scale_factor = 2}(x)), "2x3x18x26")
  local d = nn.Dropout2d(0.5)
  local y = d(skd.ones(4, 8, 3, 3))
  -- whole channels: each (n, c) plane is all 0 or all 2
  local planes = y:reshape(32, 9)
  for i = 1, 32 do
    local v = planes[i]
    T.ok(v:max():item() == v:sum():item() / 9, "a dropped channel is dropped whole")
  end
  d:eval()
  T.near(d(x), x, 0)
end)

T.test("Sequential and ModuleList name children 0, 1, ... (PyTorch)", function()
  local s = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())
  s:append(nn.Conv2d(2, 1, 1))
  T.eq(table.concat(s:state_dict_keys(), " "), "0.weight 0.bias 2.weight 2.bias")
  T.eq(#s._children, 3)
  local l = nn.ModuleList{nn.ReLU(), nn.Conv2d(1, 1, 1)}
  T.eq(table.concat(l:state_dict_keys(), " "), "1.weight 1.bias")
  T.eq(l:at(2):type(), "Conv2d")
end)

T.test("state_dict and load_state_dict round trip", function()
  local a, b = Net(), Net()
  local x = skd.randn(1, 3, 6, 6)
  a(x) -- moves the running statistics and the counter
  local sd = a:state_dict()
  local keys = a:state_dict_keys()
  T.eq(#keys, 11)
  T.eq(keys[1], "scale")
  T.eq(keys[7], "block.bn.running_mean")
  T.eq(keys[9], "block.bn.num_batches_tracked")
  T.ok(not sd["stem.weight"].requires_grad_, "state dict tensors are detached")
  b:load_state_dict(sd)
  a:eval(); b:eval()
  T.near(b(x), a(x), 0)
  T.eq(b.block.bn.num_batches_tracked:item(), 1)
  -- a counter from PyTorch (int64 -> any one-element tensor) loads
  sd["block.bn.num_batches_tracked"] = skd.tensor({5})
  b:load_state_dict(sd)
  T.eq(b.block.bn.num_batches_tracked:item(), 5)
end)

T.test("load_state_dict (strict) reports every problem in one message", function()
  local net = Net()
  local sd = net:state_dict()
  sd["stem.bias"] = nil
  sd["head.0.weight"] = nil
  sd["extra.weight"] = skd.zeros(1)
  sd["block.conv.weight"] = skd.zeros(4, 4, 1, 1)
  sd["scale"] = skd.zeros(2)
  local before = net.stem.weight:clone()
  local err = T.raises(function() net:load_state_dict(sd) end,
    "load_state_dict: 5 problem(s) loading into Net",
    "missing (2): head.0.weight, stem.bias",
    "unexpected (1): extra.weight",
    "size mismatch for block.conv.weight: checkpoint has 4x4x1x1, the model 4x4x3x3",
    "size mismatch for scale: checkpoint has 2, the model 1")
  T.ok(#err > 0)
  T.near(net.stem.weight, before, 0, "nothing is loaded when strict fails")
end)

T.test("load_state_dict strict=false loads the matching subset and returns the lists", function()
  local a, b = Net(), Net()
  local sd = a:state_dict()
  sd["stem.bias"] = nil
  sd["other"] = skd.zeros(3)
  sd["scale"] = skd.zeros(5)
  local missing, unexpected, mismatched = b:load_state_dict(sd, {strict = false})
  T.eq(table.concat(missing, ","), "stem.bias")
  T.eq(table.concat(unexpected, ","), "other")
  T.eq(table.concat(mismatched, ","), "scale")
  T.near(b.stem.weight, a.stem.weight, 0)
  T.near(b.head:at(1).weight, a.head:at(1).weight, 0)
  T.ok(T.maxdiff(b.stem.bias, a.stem.bias) > 0, "a missing tensor stays as it was")
  T.near(b.scale, {1}, 0)
end)

T.test("flatten: one parameter buffer, one gradient buffer, views that backward fills", function()
  local net = Net():flatten()
  local flat, gflat = net:flat_parameters(), net:flat_gradients()
  T.eq(flat:numel(), net:num_parameters())
  T.eq(flat.grad, gflat)
  -- every parameter is a view into flat, in named_parameters order
  local off = 0
  for name, p in net:named_parameters() do
    T.near(flat:narrow(1, off + 1, p:numel()), p:reshape(-1), 0, name)
    T.ok(p.requires_grad_ and p.is_leaf, name .. " is a leaf requiring grad")
    off = off + p:numel()
  end
  skd.no_grad(function() flat:narrow(1, 1, 1):fill_(3) end)
  T.eq(net.scale:item(), 3, "writing the flat buffer writes the parameter")
  local x = skd.randn(2, 3, 5, 5)
  net(x):sum():backward()
  T.ok(gflat:abs():sum():item() > 0, "backward fills the flat gradient")
  off = 0
  for name, p in net:named_parameters() do
    T.near(gflat:narrow(1, off + 1, p:numel()), p.grad:reshape(-1), 0, name)
    off = off + p:numel()
  end
  -- a second backward accumulates in place
  local g1 = gflat:clone()
  net(x):sum():backward()
  T.near(gflat, g1 * 2, 1e-4)
  net:zero_grad()
  T.eq(gflat:abs():sum():item(), 0)
  for _, p in ipairs(net:parameters()) do T.eq(p.grad:abs():sum():item(), 0) end
  -- a gradient dropped by someone (gradcheck does) is linked back by zero_grad
  net.stem.weight.grad = nil
  net:zero_grad()
  net(x):sum():backward()
  T.near(gflat:narrow(1, 2, 108), net.stem.weight.grad:reshape(-1), 0)
  T.ok(net.stem.weight.grad:abs():sum():item() > 0)
  net:zero_grad()
  -- a submodule's slice
  local bflat = net.block:flat_parameters()
  T.eq(bflat:numel(), net.block:num_parameters())
  T.near(bflat:narrow(1, 1, 144), net.block.conv.weight:reshape(-1), 0)
  net(x):sum():backward()
  net.block:zero_grad()
  T.eq(net.block.conv.weight.grad:abs():sum():item(), 0)
  T.ok(net.stem.weight.grad:abs():sum():item() > 0, "zero_grad of a child leaves the rest")
end)

T.test("flatten keeps values, requires_grad and gradients; the optimiser takes the flat buffer", function()
  local net = Net()
  local x = skd.randn(1, 3, 4, 4)
  net:eval()
  local y0 = net(x)
  net.stem.bias:requires_grad(false)
  net:flatten()
  T.near(net(x), y0, 0)
  T.eq(net.stem.bias.requires_grad_, false)
  if skd.optim then
    net:train()
    local opt = skd.optim.sgd(net, {lr = 0.1})
    local w0 = net.stem.weight:clone()
    opt:zero_grad()
    net(x):sum():backward()
    local g = net.stem.weight.grad:clone()
    opt:step()
    T.near(net.stem.weight, w0 - g * 0.1, 1e-6)
  end
end)

T.test("tap: a module's last output by dotted name, only once tapped", function()
  local net = Net()
  T.eq(net:tap("block.bn"), nil)
  net(skd.randn(2, 3, 7, 5))
  T.eq(shape(net:tap("block.bn")), "2x4x7x5")
  T.eq(rawget(net.head, "_tap_out"), nil, "untapped modules keep no output")
  T.eq(net:tap("head.0"), nil, "a tap registered after the forward has no output yet")
  net(skd.randn(1, 3, 3, 3))
  T.eq(shape(net:tap("block.bn")), "1x4x3x3", "the last forward")
  T.eq(shape(net:tap("head.0")), "1x2x3x3")
  net:untap("block.bn")
  T.eq(net:tap("block.bn"), nil)
end)

T.test("a failing forward names the module's path", function()
  local net = Net()
  T.raises(function() net(skd.randn(1, 5, 4, 4)) end, "stem (Conv2d): conv2d")
  local outer = nn.Sequential{nn.Identity(), Net()}
  T.raises(function() outer(skd.randn(1, 5, 4, 4)) end, "1.stem (Conv2d): conv2d")
  local bad = nn.Sequential{nn.Conv2d(3, 4, 1), nn.Sequential{nn.Conv2d(5, 1, 1)}}
  T.raises(function() bad(skd.randn(1, 3, 2, 2)) end, "1.0 (Conv2d): conv2d")
  -- the error does not leave the machinery in a bad state
  T.eq(shape(net(skd.randn(1, 3, 4, 4))), "1x2x4x4")
end)

T.test("printing: the tree with layer settings and parameter counts", function()
  local s = tostring(Net())
  T.ok(s:find("Net(  -- 275", 1, true), s)
  T.ok(s:find("  (stem): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))  -- 112", 1, true), s)
  T.ok(s:find("    (conv): Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)  -- 144", 1, true), s)
  T.ok(s:find("    (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1)  -- 8", 1, true), s)
  T.ok(s:find("    (1): ReLU()\n", 1, true), s)
  T.ok(s:find("Total parameters: 275 (trainable 275)", 1, true), s)
  local d = tostring(nn.Conv2d(8, 8, 3, {dilation = 2, padding = 2, groups = 4, bias = false}))
  T.ok(d:find("dilation=(2, 2), groups=4, bias=False", 1, true), d)
end)

-- ---------------------------------------------------------------- SelfAttention

T.test("SelfAttention: identity at γ=0, and the formula by hand", function()
  local sa = nn.SelfAttention(8)
  T.eq(table.concat(sa:state_dict_keys(), " "), "gamma query_conv.weight query_conv.bias key_conv.weight " ..
    "key_conv.bias value_conv.weight value_conv.bias")
  T.eq(shape(sa.query_conv.weight), "1x8x1x1")
  local x = skd.randn(1, 8, 2, 3)
  T.near(sa(x), x, 0)
  skd.no_grad(function() sa.gamma:fill_(0.5) end)
  -- by hand: q_i, k_j scalars (c/8 = 1), v_j 8-vectors
  local function proj(conv, i)
    local w, b = conv.weight, conv.bias
    local out = {}
    for o = 1, w:size(1) do
      local s = b:get(o)
      for c = 1, 8 do s = s + w:get(o, c, 1, 1) * x:get(1, c, (i - 1) // 3 + 1, (i - 1) % 3 + 1) end
      out[o] = s
    end
    return out
  end
  local want = {}
  for i = 1, 6 do
    local qi = proj(sa.query_conv, i)[1]
    local e, z = {}, 0
    for j = 1, 6 do e[j] = math.exp(qi * proj(sa.key_conv, j)[1]); z = z + e[j] end
    for c = 1, 8 do
      local s = 0
      for j = 1, 6 do s = s + proj(sa.value_conv, j)[c] * e[j] / z end
      want[#want + 1] = {c, i, 0.5 * s + x:get(1, c, (i - 1) // 3 + 1, (i - 1) % 3 + 1)}
    end
  end
  local y = sa(x)
  local err = 0
  for _, w in ipairs(want) do
    local c, i = w[1], w[2]
    err = math.max(err, math.abs(y:get(1, c, (i - 1) // 3 + 1, (i - 1) % 3 + 1) - w[3]))
  end
  T.ok(err < 1e-5, "max error " .. err)
  local _, attn = sa(x)
  T.eq(shape(attn), "1x6x6")
  T.near(attn:sum(3), skd.ones(1, 6), 1e-5)
end)

T.test("SelfAttention gradcheck (γ ≠ 0): input, a projection and γ", function()
  local sa = nn.SelfAttention(8)
  skd.no_grad(function() sa.gamma:fill_(0.7) end)
  local x = skd.randn(2, 8, 3, 2):requires_grad()
  T.gradcheck(function(xx) return sa(xx) end, {x, sa.query_conv.weight, sa.value_conv.weight, sa.gamma},
    {eps = 1e-2, atol = 2e-3, rtol = 2e-2, max_checks = 24})
end)

-- ---------------------------------------------------------------- SpectralNorm

T.test("SpectralNorm: PyTorch's names; power iteration converges to the top singular value", function()
  local lin = nn.Linear(3, 3, {bias = false})
  skd.no_grad(function() lin.weight:copy_(skd.tensor({{0, 3, 0}, {2, 0, 0}, {0, 0, 1}})) end)
  local sn = nn.SpectralNorm(lin)
  T.eq(table.concat(sn:state_dict_keys(), " "), "weight_orig weight_u weight_v")
  local x = skd.tensor({{1, 1, 1}})
  for _ = 1, 40 do sn(x) end
  local _, sigma = sn:normalized_weight()
  T.near(sigma:item(), 3, 1e-4)
  T.near(sn.weight_u:abs(), {1, 0, 0}, 1e-4)
  T.near(sn(x), {{1, 2 / 3, 1 / 3}}, 1e-4)
  local c = nn.SpectralNorm(nn.Conv2d(2, 4, 3))
  T.eq(table.concat(c:state_dict_keys(), " "), "bias weight_orig weight_u weight_v")
  T.eq(shape(c.weight_u), "4")
  T.eq(shape(c.weight_v), "18")
  T.near((c.weight_u * c.weight_u):sum(), 1, 1e-5)
end)

T.test("SpectralNorm: update_u=false and eval freeze u and v", function()
  local sn = nn.SpectralNorm(nn.Conv2d(3, 4, 3, {padding = 1}))
  local x = skd.randn(1, 3, 5, 5)
  sn(x)
  local u = sn.weight_u:clone()
  sn(x)
  T.ok(T.maxdiff(sn.weight_u, u) > 0, "training updates u")
  sn.update_u = false
  u = sn.weight_u:clone()
  local y1 = sn(x)
  local y2 = sn(x)
  T.near(sn.weight_u, u, 0)
  T.near(y1, y2, 0)
  sn.update_u = true
  T.eq(nn.power_iteration(sn, false), true)
  T.eq(sn.update_u, false)
  sn.update_u = true
  sn:eval()
  u = sn.weight_u:clone()
  sn(x)
  T.near(sn.weight_u, u, 0)
end)

T.test("SpectralNorm gradcheck (power iteration frozen): σ is differentiated through W", function()
  local sn = nn.SpectralNorm(nn.Conv2d(2, 3, 3, {stride = 2, padding = 1}))
  local x = skd.randn(1, 2, 5, 5):requires_grad()
  for _ = 1, 3 do sn(x) end
  sn.update_u = false
  local r = T.gradcheck(function(xx) return sn(xx) end, {x, sn.weight_orig, sn.bias},
    {eps = 1e-2, atol = 2e-3, rtol = 2e-2, max_checks = 30})
  T.ok(r.max_abs_err < 2e-3)
  -- without the σ term the weight gradient would be different: check one entry's sign of life
  T.ok(sn.weight_orig.grad:abs():sum():item() > 0)
end)

T.test("SpectralNorm: a later forward's power iteration does not change an earlier graph", function()
  local sn = nn.SpectralNorm(nn.Conv2d(2, 3, 3, {padding = 1}))
  local x = skd.randn(1, 2, 4, 4)
  local y1 = sn(x)
  local u1, v1 = sn.weight_u:clone(), sn.weight_v:clone()
  sn(x) -- moves u and v in place
  T.ok(T.maxdiff(sn.weight_u, u1) > 0)
  y1:sum():backward()
  local g = sn.weight_orig.grad:clone()
  -- the reference: the same forward from u1, v1, frozen
  skd.no_grad(function() sn.weight_u:copy_(u1); sn.weight_v:copy_(v1) end)
  sn.update_u = false
  sn.weight_orig.grad = nil
  sn(x):sum():backward()
  T.near(g, sn.weight_orig.grad, 1e-6)
end)

-- ---------------------------------------------------------------- freeze

T.test("freeze: eval, no gradients, BatchNorm folded within 1e-4, names kept", function()
  local net = Net()
  local x = skd.randn(2, 3, 6, 6)
  for _ = 1, 3 do net(skd.randn(4, 3, 6, 6) * 2 + 1) end -- running statistics away from 0/1
  skd.no_grad(function()
    net.block.bn.weight:copy_(skd.rand(4) + 0.5)
    net.block.bn.bias:copy_(skd.randn(4))
  end)
  net:eval()
  local want = net(x)
  local keys = table.concat(net:state_dict_keys(), " ")
  net:freeze()
  T.ok(net.frozen)
  T.eq(rawget(net.block.bn, "_folded"), nil, "Block declares no fold pairs")
  -- a Sequential of conv, bn folds
  local s = nn.Sequential{nn.Conv2d(3, 4, 3, {bias = false}), nn.BatchNorm2d(4), nn.ReLU()}
  for _ = 1, 3 do s(skd.randn(4, 3, 6, 6) * 3 - 1) end
  s:eval()
  local ws = s(x)
  s:freeze()
  T.ok(rawget(s:at(2), "_folded"), "conv+bn in a Sequential is folded")
  T.near(s(x), ws, 1e-4)
  T.eq(s(x).grad_fn, nil)
  for _, p in ipairs(s:parameters()) do T.eq(p.requires_grad_, false) end
  T.near(net(x), want, 1e-5)
  T.eq(table.concat(net:state_dict_keys(), " "), keys)
  -- loading new weights into a frozen network refolds
  local s2 = nn.Sequential{nn.Conv2d(3, 4, 3, {bias = false}), nn.BatchNorm2d(4), nn.ReLU()}
  s2:eval()
  local w2 = s2(x)
  s:load_state_dict(s2:state_dict())
  T.near(s(x), w2, 1e-4)
  -- unfreeze drops the folding
  s:unfreeze()
  T.eq(rawget(s:at(1), "_folded_scale"), nil)
  T.ok(s.training)
  T.ok(s:at(1).weight.requires_grad_)
end)

T.test("flatten: the gradient buffer is made on first need, and keeps earlier gradients", function()
  local net = Net():flatten()
  for _, p in ipairs(net:parameters()) do T.eq(p.grad, nil, "no gradient before backward (PyTorch)") end
  local x = skd.randn(2, 3, 5, 5)
  net(x):sum():backward()                     -- before any optimiser: ordinary .grad tensors
  local before = {}
  for i, p in ipairs(net:parameters()) do before[i] = p.grad:clone() end
  local gflat = net:flat_gradients()          -- made now, with those gradients copied in
  local off = 0
  for i, p in ipairs(net:parameters()) do
    T.near(gflat:narrow(1, off + 1, p:numel()), before[i]:reshape(-1), 0)
    off = off + p:numel()
  end
  net(x):sum():backward()                     -- and backward now accumulates into it
  off = 0
  for i, p in ipairs(net:parameters()) do
    T.near(gflat:narrow(1, off + 1, p:numel()), before[i]:reshape(-1) * 2, 1e-5)
    off = off + p:numel()
  end
end)

T.test("freeze: a frozen network holds its weights once (no gradient buffer, no folded copies)", function()
  collectgarbage(); collectgarbage()          -- earlier tests' garbage must not be freed mid-count
  skd.empty_cache()
  local base = skd.memory().in_use
  local net = skd.models.resnet{depth = 18, width = 0.5}
  net:flat_parameters()                       -- an optimiser would make the gradient buffer
  local bytes = 4 * net:num_parameters()
  T.ok(skd.memory().in_use - base >= 2 * bytes, "parameters and gradients")
  net:freeze()
  local held = skd.memory().in_use - base
  T.ok(held < bytes * 1.05 + 2^20, string.format("frozen: %.1f MB held for %.1f MB of parameters",
    held / 2^20, bytes / 2^20))
  for _, p in ipairs(net:parameters()) do T.eq(p.grad, nil) end
  net:zero_grad()                             -- makes no buffer for a frozen net
  T.ok(skd.memory().in_use - base < bytes * 1.05 + 2^20, "zero_grad on a frozen net")
  local x = skd.randn(1, 3, 32, 32)
  local y = skd.no_grad(function() return net(x) end)
  net:unfreeze(); net:eval()
  T.near(y, skd.no_grad(function() return net(x) end), 1e-4, "folded = unfolded")
end)

T.test("channel_affine_: in place per channel, refused where autograd would need the input", function()
  local x = skd.tensor{{{{1, 2}}, {{3, 4}}}}  -- 1x2x1x2
  local r = skd._channel_affine_(x, skd.tensor{2, -1}, skd.tensor{1, 0.5})
  T.eq(r, x)
  T.near(x, skd.tensor{{{{3, 5}}, {{-2.5, -3.5}}}}, 0)
  T.raises(function() skd._channel_affine_(skd.randn(1, 3, 2, 2), skd.ones(2), skd.ones(2)) end,
    "scale expects 3 elements")
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 2, {requires_grad = true}), skd.ones(2), skd.ones(2)) end,
    "requires grad")
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 4):transpose(3, 4), skd.ones(2), skd.ones(2)) end,
    "contiguous")
end)

T.test("channel_affine_ with a residual and ReLU: a frozen ResNet block's epilogue in one pass", function()
  local x = skd.tensor{{{{1, -2}}, {{3, 4}}}}  -- 1x2x1x2
  local r = skd.tensor{{{{0.5, 1}}, {{-10, 1}}}}
  -- channel 0: 2x + 1 + r = 3.5, -2 -> 3.5, 0; channel 1: -x + 0.5 + r = -12.5, -2.5 -> 0, 0
  T.near(skd._channel_affine_(x, skd.tensor{2, -1}, skd.tensor{1, 0.5}, r, true), skd.tensor{{{{3.5, 0}}, {{0, 0}}}}, 0)
  local y = skd.tensor{{{{1, -2}}, {{3, 4}}}}
  T.near(skd._channel_affine_(y, skd.tensor{2, -1}, skd.tensor{1, 0.5}, r), skd.tensor{{{{3.5, -2}}, {{-12.5, -2.5}}}}, 0)
  local z = skd.tensor{{{{1, -2}}, {{3, 4}}}}
  T.near(skd._channel_affine_(z, skd.tensor{2, -1}, skd.tensor{1, 0.5}, nil, true), skd.tensor{{{{3, 0}}, {{0, 0}}}}, 0)
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 2), skd.ones(2), skd.ones(2), skd.randn(1, 2, 2, 3), true) end,
    "channel_affine_: expects a residual of the tensor's shape 1x2x2x2")
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 2), skd.ones(2), skd.ones(2), skd.randn(1, 2, 2, 2, {requires_grad = true})) end,
    "residual that requires grad")
  -- arguments in the wrong place are errors, not silently dropped
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 2), skd.ones(2), skd.ones(2), true) end, "tensor expected")
  T.raises(function() skd._channel_affine_(skd.randn(1, 2, 2, 2), skd.ones(2), skd.ones(2), nil, 1) end, "boolean expected")
  -- the residual may be the tensor itself (x·a + b + x), not a part of its storage elsewhere
  local t = skd.ones(1, 2, 1, 2)
  T.near(skd._channel_affine_(t, skd.ones(2), skd.zeros(2), t), skd.full({1, 2, 1, 2}, 2), 0)
  local u = skd.ones(1, 3, 1, 2)
  T.raises(function() skd._channel_affine_(u:narrow(2, 2, 2), skd.ones(2), skd.zeros(2), u:narrow(2, 1, 2)) end,
    "shares its storage at another offset")
end)

T.test("empty: shape and dtype, no values promised", function()
  local e = skd.empty(2, 3)
  T.eq(table.concat(e:size(), "x"), "2x3")
  T.eq(skd.empty({4}, {dtype = "int32"}):dtype(), "int32")
  T.raises(function() skd.empty(-1) end, "negative")
end)

T.test("normal_, uniform_: the draws of randn, rand, in place; bad calls are named", function()
  skd.manual_seed(7); local want = skd.randn(3, 4) * 0.5 + 2
  skd.manual_seed(7); local got = skd.empty(3, 4):normal_(2, 0.5)
  T.near(got, want, 1e-6)
  skd.manual_seed(7); want = skd.rand(100) * 4 - 1
  skd.manual_seed(7); got = skd.zeros(100):uniform_(-1, 3)
  T.near(got, want, 1e-6)
  T.ok((-got):max():item() <= 1 and got:max():item() < 3)
  local big = skd.empty(200000):normal_()
  T.near(big:mean():item(), 0, 0.01)
  T.near(big:pow(2):mean():item(), 1, 0.01)
  T.raises(function() skd.empty(4):uniform_(2, 1) end, "uniform_: expects a <= b")
  T.raises(function() skd.empty(4):normal_(0, -1) end, "std must be >= 0")
  T.raises(function() skd.empty(4, 4):transpose(1, 2):normal_() end, "contiguous")
  T.raises(function() skd.empty(4, {requires_grad = true}):normal_() end, "skd.no_grad")
end)

T.done()
