-- dropout and dropout2d: masks from the seeded engine RNG (repeatable), scaling by 1/(1−p),
-- identity out of training, gradients through a fixed mask, errors by message.
local T = require "harness"
skd.manual_seed(5)

T.test("kept elements are scaled by 1/(1-p), the rest are 0; about p of them dropped", function()
  local x = skd.rand(100000) + 1
  local y = skd.dropout(x, 0.3)
  local q = y / x -- 0 or 1/0.7
  local vals = q:reshape(-1):totable()
  local zeros = 0
  for _, v in ipairs(vals) do
    if v == 0 then zeros = zeros + 1
    else T.near(v, 1 / 0.7, 1e-6) end
  end
  -- binomial(1e5, 0.3): sd ≈ 145, so ±1500 is ten sd
  T.ok(math.abs(zeros - 30000) < 1500, "dropped " .. zeros .. " of 100000")
end)

T.test("the same seed gives the same mask; the stream moves on otherwise", function()
  local x = skd.ones(4, 5)
  skd.manual_seed(11)
  local a = skd.dropout(x, 0.5)
  local b = skd.dropout(x, 0.5)
  skd.manual_seed(11)
  local c = skd.dropout(x, 0.5)
  T.near(a, c, 0)
  T.ok(T.maxdiff(a, b) > 0, "two draws in a row should differ")
end)

T.test("training=false or p=0 is the identity, with the gradient passed through", function()
  local x = skd.randn(3, 4):requires_grad()
  local y = skd.dropout(x, 0.5, false)
  T.near(y, x, 0)
  local z = skd.dropout(x, 0)
  T.near(z, x, 0)
  local w = skd.dropout2d(skd.randn(2, 3, 2, 2), 0.5, false)
  T.eq(w:dim(), 4)
  ;((y + z) * 2):sum():backward()
  T.near(x.grad, skd.full({3, 4}, 4), 0)
  -- no draws were made: the stream is where it was
  skd.manual_seed(7)
  skd.dropout(x, 0.5, false)
  local after = skd.rand(3)
  skd.manual_seed(7)
  T.near(after, skd.rand(3), 0)
end)

T.test("backward by hand: the gradient is the mask", function()
  local x = skd.randn(50):requires_grad()
  local y = skd.dropout(x, 0.4)
  y:sum():backward()
  local mask = y:detach() / x:detach()
  T.near(x.grad, mask, 1e-5)
end)

T.test("dropout2d zeroes whole (n,c) channels", function()
  local x = skd.rand(4, 50, 3, 3) + 1
  local y = skd.dropout2d(x, 0.5)
  local q = (y / x):reshape(200, 9)
  local dropped = 0
  for i = 1, 200 do
    local row = q:select(1, i)
    local first = row:get(1)
    T.near(row, skd.full({9}, first), 1e-6, "channel " .. i .. " mixed")
    if first == 0 then dropped = dropped + 1 else T.near(first, 2, 1e-6) end
  end
  -- binomial(200, 0.5): sd ≈ 7
  T.ok(dropped > 50 and dropped < 150, "dropped " .. dropped .. " of 200 channels")
end)

T.test("gradcheck dropout and dropout2d with a fixed mask (reseeded per call)", function()
  T.gradcheck(function(t) skd.manual_seed(42); return skd.dropout(t, 0.3) end,
              {skd.randn(3, 4, 5):requires_grad()})
  T.gradcheck(function(t) skd.manual_seed(43); return skd.dropout2d(t, 0.5) end,
              {skd.randn(2, 6, 3, 3):requires_grad()})
end)

T.test("masks do not depend on the thread count", function()
  local x = skd.randn(4, 8, 64, 64)
  T.same_at_threads(function()
    skd.manual_seed(9)
    return skd.dropout(x, 0.2), skd.dropout2d(x, 0.2)
  end)
end)

T.test("bad dropout calls raise errors naming the op and the problem", function()
  local x = skd.randn(2, 3, 4, 4)
  local bad = {
    {function() skd.dropout(x, 1) end, "dropout", "p must be in [0, 1)", "1"},
    {function() skd.dropout(x, -0.1) end, "dropout", "p must be in [0, 1)", "-0.1"},
    {function() skd.dropout2d(x, 1.5) end, "dropout2d", "p must be in [0, 1)"},
    {function() skd.dropout2d(skd.randn(3, 4, 4), 0.5) end, "dropout2d", "4-d", "3x4x4"},
    {function() skd.dropout(x:int(), 0.5) end, "dropout", "float32", "int32"},
    {function() skd.dropout(nil, 0.5) end, "tensor expected"},
  }
  T.raises_each(bad)
end)

T.done()
