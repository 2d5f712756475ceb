-- skd.losses, method.md §0–§2 outside the pair-wise term: cross-entropy on upsampled logits,
-- pixel-wise KL (values by hand, T² scaling, batchsum, ignore masking, its gradient formula),
-- MIMIC, attention transfer and the critic's input; finite-difference checks of each.
local T = require "harness"
local L = skd.losses
skd.manual_seed(11)

local log = math.log

-- Logits B×C×h×w from per-pixel class vectors given row-major, for one image.
local logits = T.from_pixels

-- Σ_c p_c log(p_c / q_c)
local function kl(p, q)
  local s = 0
  for c = 1, #p do s = s + p[c] * log(p[c] / q[c]) end
  return s
end

-- ---------- cross-entropy ----------

T.test("cross_entropy upsamples logits to the label size and ignores 255, by hand", function()
  -- constant logits (0, log 3): any upsampling keeps p = (1/4, 3/4) at every pixel
  local z = logits(2, 2, {{0, log(3)}, {0, log(3)}, {0, log(3)}, {0, log(3)}})
  local y = skd.tensor({{{0, 1, 1}, {255, 1, 0}, {1, 255, 1}}}, {dtype = "int32"})
  -- kept: two 0s (−log 1/4 each) and five 1s (−log 3/4 each)
  local want = (2 * -log(0.25) + 5 * -log(0.75)) / 7
  T.near(L.cross_entropy(z, y):item(), want, 1e-6)
  -- ignore_index is an option
  local want2 = (2 * -log(0.25) + 5 * -log(0.75) + 2 * -log(0.25)) / 9
  local y2 = skd.tensor({{{0, 1, 1}, {7, 1, 0}, {1, 7, 1}}}, {dtype = "int32"})
  T.eq(pcall(L.cross_entropy, z, y2), false) -- 7 is not a class of 2
  local y3 = skd.tensor({{{0, 1, 1}, {0, 1, 0}, {1, 0, 1}}}, {dtype = "int32"})
  T.near(L.cross_entropy(z, y3, {ignore_index = 9}):item(), want2, 1e-6)
  -- class weights: the two 0s count 3 times each, the five 1s once
  local want3 = (3 * 2 * -log(0.25) + 5 * -log(0.75)) / (3 * 2 + 5)
  T.near(L.cross_entropy(z, y, {weight = skd.tensor({3, 1})}):item(), want3, 1e-6)
end)

T.test("cross_entropy = skd.cross_entropy on bilinear align_corners=true logits", function()
  local z = skd.randn(2, 4, 3, 5)
  local y = (skd.rand(2, 9, 17) * 4):int()
  local up = skd.interpolate(z, {9, 17}, {mode = "bilinear", align_corners = true})
  T.near(L.cross_entropy(z, y), skd.cross_entropy(up, y), 1e-6)
  T.near(L.cross_entropy(up, y), skd.cross_entropy(up, y), 0) -- same size: no resize
end)

T.test("gradcheck cross_entropy through the upsampling", function()
  local z = skd.randn(1, 3, 2, 3):requires_grad()
  local y = (skd.rand(1, 4, 5) * 3):int()
  T.gradcheck(function(x) return L.cross_entropy(x, y) end, {z})
end)

-- ---------- pixel-wise KL ----------

-- 2 pixels × 3 classes: the student uniform at pixel 1, equal to the teacher at pixel 2.
local qt1, qs1 = {0.25, 0.5, 0.25}, {1 / 3, 1 / 3, 1 / 3}
local q2 = {0.5, 0.25, 0.25}
local function two_pixels(scale_t, scale_s)
  local zs = logits(1, 2, {{0, 0, 0}, {log(q2[1]) * scale_s, log(q2[2]) * scale_s, log(q2[3]) * scale_s}})
  local zt = logits(1, 2, {{log(qt1[1]) * scale_t, log(qt1[2]) * scale_t, log(qt1[3]) * scale_t},
                           {log(q2[1]) * scale_t, log(q2[2]) * scale_t, log(q2[3]) * scale_t}})
  return zs, zt
end

T.test("pixel_kl on 2 pixels x 3 classes by hand: direction teacher -> student, mean", function()
  local zs, zt = two_pixels(1, 1)
  local want = (kl(qt1, qs1) + 0) / 2
  T.near(L.pixel_kl(zs, zt):item(), want, 1e-6)
  -- the other direction would give a different number: make sure we did not compute it
  T.ok(math.abs(kl(qs1, qt1) / 2 - want) > 1e-3)
end)

T.test("pixel_kl with T=2 softens both and scales by T^2", function()
  -- logits 2·log q: softmax(z/2) = q, so the KL is the T=1 one, times 4
  local zs, zt = two_pixels(2, 2)
  T.near(L.pixel_kl(zs, zt, {T = 2}):item(), 4 * kl(qt1, qs1) / 2, 1e-6)
end)

T.test("pixel_kl reduction: mean over B*h*w, batchsum over h*w only", function()
  local zs, zt = two_pixels(1, 1)
  local zs2, zt2 = skd.cat({zs, zs, zs}, 1), skd.cat({zt, zt, zt}, 1) -- B = 3
  local per_image = kl(qt1, qs1) / 2
  T.near(L.pixel_kl(zs2, zt2):item(), per_image, 1e-6)
  T.near(L.pixel_kl(zs2, zt2, {reduction = "batchsum"}):item(), 3 * per_image, 1e-6)
end)

T.test("pixel_kl mask_ignore: labels resized nearest to h x w, ignored pixels drop out", function()
  local zs, zt = two_pixels(1, 1)
  -- labels 2x4 -> 1x2 by nearest: output column 1 reads column 1, column 2 reads column 3
  local y = skd.tensor({{{1, 1, 255, 2}, {0, 0, 0, 0}}}, {dtype = "int32"})
  T.near(L.pixel_kl(zs, zt, {mask_ignore = true, labels = y}):item(), kl(qt1, qs1), 1e-6)
  local y2 = skd.tensor({{{255, 1, 0, 2}, {0, 0, 0, 0}}}, {dtype = "int32"})
  T.near(L.pixel_kl(zs, zt, {mask_ignore = true, labels = y2}):item(), 0, 1e-6) -- pixel 1 ignored
  local y3 = skd.full({1, 2, 4}, 255):int()
  T.near(L.pixel_kl(zs, zt, {mask_ignore = true, labels = y3}):item(), 0, 0)   -- all ignored
  T.raises(function() L.pixel_kl(zs, zt, {mask_ignore = true}) end, "needs labels")
end)

T.test("pixel_kl gradient is (q_s - q_t)/(B h w) * T; the teacher gets none", function()
  local zs, zt = two_pixels(1, 1)
  zs = (zs * 1.3 + 0.2):detach():requires_grad()
  zt = zt:detach():requires_grad()
  for _, Tm in ipairs({1, 2.5}) do
    zs.grad, zt.grad = nil, nil
    L.pixel_kl(zs, zt, {T = Tm}):backward()
    local qs = skd.softmax(zs:detach() / Tm, 2)
    local qt = skd.softmax(zt:detach() / Tm, 2)
    T.near(zs.grad, (qs - qt) * (Tm / 2), 1e-6)
    T.eq(zt.grad, nil)
  end
end)

T.test("gradcheck pixel_kl: T=1, T=3, batchsum, mask_ignore", function()
  local zs = skd.randn(2, 4, 3, 3):requires_grad()
  local zt = skd.randn(2, 4, 3, 3)
  local y = (skd.rand(2, 6, 6) * 4):int()
  y:set(255, 1, 1, 1); y:set(255, 2, 3, 4)
  for _, o in ipairs({{}, {T = 3}, {reduction = "batchsum"}, {mask_ignore = true, labels = y}}) do
    T.gradcheck(function(x) return L.pixel_kl(x, zt, o) * 10 end, {zs})
  end
end)

T.test("pixel_kl errors", function()
  T.raises(function() L.pixel_kl(skd.randn(1, 3, 2, 2), skd.randn(1, 4, 2, 2)) end, "pixel_kl", "1x3x2x2", "1x4x2x2")
  T.raises(function() L.pixel_kl(skd.randn(1, 3, 2, 2), skd.randn(1, 3, 2, 2), {reduction = "sum"}) end, "batchsum")
  T.raises(function() L.pixel_kl(skd.randn(1, 3, 2, 2), skd.randn(1, 3, 2, 2), {temp = 2}) end, "unknown option 'temp'")
end)

-- ---------- MIMIC and attention transfer ----------

T.test("mimic by hand: a 1x1 adapter, then the mean squared difference", function()
  local fs = skd.tensor({{{{1, 0}}, {{2, 1}}}})     -- 1x2x1x2: pixels (1,2), (0,1)
  local w = skd.tensor({{{{3}}, {{4}}}})             -- 1x2x1x1: 3a + 4b -> 11, 4
  local ft = skd.tensor({{{{10, 6}}}})               -- differences 1, -2
  T.near(L.mimic(fs, ft, w):item(), (1 + 4) / 2, 1e-6)
  T.near(L.mimic(fs, ft, {weight = w, bias = skd.tensor({1})}):item(), (4 + 1) / 2, 1e-6)
  local module = setmetatable({}, {__call = function(_, x) return skd.conv2d(x, w) end})
  T.near(L.mimic(fs, ft, module):item(), 2.5, 1e-6)
  T.raises(function() L.mimic(fs, skd.randn(1, 3, 1, 2), w) end, "mimic", "1x1x1x2", "1x3x1x2")
end)

T.test("gradcheck mimic wrt the student and the adapter", function()
  local fs = skd.randn(2, 3, 4, 4):requires_grad()
  local ft = skd.randn(2, 5, 2, 2) -- resized to 4x4
  local w = L.mimic_adapter(3, 5)
  if not skd.is_tensor(w) then w = w.weight end
  T.gradcheck(function(x, a) return L.mimic(x, ft, a) end, {fs, w})
end)

T.test("attention_transfer by hand: normalised channel means of squares", function()
  local fs = skd.tensor({{{{1, 0}}, {{1, 2}}}}) -- pixels (1,1), (0,2): means of squares 1, 2
  local ft = skd.tensor({{{{3, 3}}}})           -- 9, 9: normalised (1,1)/sqrt 2
  local s = {1 / math.sqrt(5), 2 / math.sqrt(5)}
  local t = {1 / math.sqrt(2), 1 / math.sqrt(2)}
  local want = ((s[1] - t[1]) ^ 2 + (s[2] - t[2]) ^ 2) / 2
  T.near(L.attention_transfer(fs, ft):item(), want, 1e-6)
  -- p = 4: |f|^4 means 1, 8 -> (1, 8)/sqrt 65
  local s4 = {1 / math.sqrt(65), 8 / math.sqrt(65)}
  T.near(L.attention_transfer(fs, ft, {p = 4}):item(), ((s4[1] - t[1]) ^ 2 + (s4[2] - t[2]) ^ 2) / 2, 1e-6)
end)

T.test("gradcheck attention_transfer (p=2, p=3, teacher of another size)", function()
  local fs = skd.randn(2, 3, 4, 3):requires_grad()
  local ft = skd.randn(2, 6, 4, 3)
  T.gradcheck(function(x) return L.attention_transfer(x, ft) * 10 end, {fs})
  T.gradcheck(function(x) return L.attention_transfer(x, ft, {p = 3}) * 10 end, {fs})
  local ft2 = skd.randn(2, 4, 8, 6)
  T.gradcheck(function(x) return L.attention_transfer(x, ft2) * 10 end, {fs})
end)

-- ---------- the critic's input ----------

T.test("critic_input: softmax(z) and the image resized to h x w; or the raw logits", function()
  local z = skd.randn(2, 5, 4, 6)
  local img = skd.randn(2, 3, 32, 48)
  local x = L.critic_input(z, img, "image")
  T.eq(table.concat(x:size(), "x"), "2x8x4x6")
  T.near(x:narrow(2, 1, 5), skd.softmax(z, 2), 1e-7)
  T.near(x:narrow(2, 6, 3), skd.interpolate(img, {4, 6}, {mode = "bilinear", align_corners = true}), 1e-7)
  T.near(L.critic_input(z, img, "logits"), z, 0)
  T.near(L.critic_input(z, img), x, 0) -- "image" is the default
  T.raises(function() L.critic_input(z, img, "pixels") end, "condition")
  -- the student's gradient passes through softmax
  local zs = z:clone():requires_grad()
  L.critic_input(zs, img):sum():backward()
  T.ok(zs.grad ~= nil)
end)

T.done()
