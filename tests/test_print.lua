-- tostring of tensors (core/print.c): Torch7's layout — one common number format, right-aligned
-- columns, a scale line when magnitudes are extreme, "(i,.,.) =" slices, the size footer — and
-- PyTorch-style summarisation of large tensors. Expected strings are written out in full.
local T = require "harness"

local function same(t, want)
  local got = tostring(t)
  if got ~= want then
    error("tostring differs\n--- expected\n" .. want .. "\n--- got\n" .. got, 2)
  end
end

T.test("integral floats print without decimals", function()
  same(skd.ones(2, 3), " 1  1  1\n 1  1  1\n[skd.FloatTensor of size 2x3]")
  same(skd.tensor({{1, -20}, {300, 4}}),
       "   1  -20\n 300    4\n[skd.FloatTensor of size 2x2]")
end)

T.test("fractions: 4 decimals, width from the largest magnitude", function()
  same(skd.tensor({{1.5, -2}, {0.25, 3}}),
       " 1.5000 -2.0000\n 0.2500  3.0000\n[skd.FloatTensor of size 2x2]")
  same(skd.tensor({12.5, -3}), " 12.5000\n -3.0000\n[skd.FloatTensor of size 2]")
  same(skd.tensor({1, 2.5}), " 1.0000\n 2.5000\n[skd.FloatTensor of size 2]")
  same(skd.tensor({0.5, -0.125}), " 0.5000\n-0.1250\n[skd.FloatTensor of size 2]")
end)

T.test("1-d tensors print one value a line", function()
  same(skd.tensor({1, 2, 3}), " 1\n 2\n 3\n[skd.FloatTensor of size 3]")
end)

T.test("int32 tensors", function()
  same(skd.tensor({1, -2, 30}, {dtype = "int32"}), "  1\n -2\n 30\n[skd.IntTensor of size 3]")
  same(skd.tensor({{0, 7}}, {dtype = "int32"}), " 0  7\n[skd.IntTensor of size 1x2]")
end)

T.test("a common scale line for very small or very large values", function()
  same(skd.tensor({0.001, 0.002, -0.0005}),
       "1e-03 *\n 1.0000\n 2.0000\n-0.5000\n[skd.FloatTensor of size 3]")
  same(skd.tensor({123456.7, 200000}), "1e+05 *\n 1.2346\n 2.0000\n[skd.FloatTensor of size 2]")
  same(skd.tensor({{0.01, 0.02}, {0.03, 0.04}}),
       "1e-02 *\n 1.0000  2.0000\n 3.0000  4.0000\n[skd.FloatTensor of size 2x2]")
end)

T.test("exponent notation when magnitudes span more than 4 decades", function()
  same(skd.tensor({1e-5, 1.5}), " 1.0000e-05\n 1.5000e+00\n[skd.FloatTensor of size 2]")
  same(skd.tensor({3e9, 1}), " 3.0000e+09\n 1.0000e+00\n[skd.FloatTensor of size 2]")
end)

T.test("nan and inf", function()
  same(skd.tensor({0 / 0, 1 / 0, -1 / 0, 1.5}),
       "    nan\n    inf\n   -inf\n 1.5000\n[skd.FloatTensor of size 4]")
  same(skd.tensor({1 / 0, 2}), " inf\n   2\n[skd.FloatTensor of size 2]")
  same(skd.tensor({-0.0, 0.0}), " 0\n 0\n[skd.FloatTensor of size 2]")
end)

T.test("3-d and 4-d tensors print as headed matrices", function()
  local x = skd.tensor({{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}})
  same(x, "(1,.,.) =\n  1  2\n  3  4\n\n(2,.,.) =\n  5  6\n  7  8\n[skd.FloatTensor of size 2x2x2]")
  same(skd.ones(1, 2, 1, 2),
       "(1,1,.,.) =\n  1  1\n\n(1,2,.,.) =\n  1  1\n[skd.FloatTensor of size 1x2x1x2]")
end)

T.test("0-d and empty tensors", function()
  same(skd.tensor(3.5), " 3.5000\n[skd.FloatTensor scalar]")
  same(skd.ones(2, 3):sum(), " 6\n[skd.FloatTensor scalar]")
  same(skd.zeros(0, 3), "[skd.FloatTensor of size 0x3]")
  same(skd.zeros(0), "[skd.FloatTensor of size 0]")
end)

T.test("views print their own elements (strides, offsets)", function()
  local x = skd.tensor({{1, 2, 3}, {4, 5, 6}})
  same(x:transpose(1, 2), " 1  4\n 2  5\n 3  6\n[skd.FloatTensor of size 3x2]")
  same(x:narrow(2, 2, 2), " 2  3\n 5  6\n[skd.FloatTensor of size 2x2]")
  same(x:select(1, 2), " 4\n 5\n 6\n[skd.FloatTensor of size 3]")
end)

T.test("wide matrices print in column blocks of 80 characters", function()
  local s = tostring(skd.ones(2, 30) * 0.5)
  local row = (" 0.5000"):rep(10, " ")
  local block = row .. "\n" .. row .. "\n"
  T.eq(s, "Columns 1 to 10\n" .. block .. "\nColumns 11 to 20\n" .. block ..
          "\nColumns 21 to 30\n" .. block .. "[skd.FloatTensor of size 2x30]")
  for line in s:gmatch("[^\n]+") do T.ok(#line <= 80, "line longer than 80: " .. line) end
end)

T.test("large tensors are summarised: first and last 3 of each dimension", function()
  same(skd.arange(1, 2001),
       "    1\n    2\n    3\n  ...\n 1998\n 1999\n 2000\n[skd.FloatTensor of size 2000]")
  local edge = "  1   1   1 ...   1   1   1\n"
  same(skd.ones(1000, 1000), edge:rep(3) .. "...\n" .. edge:rep(3) .. "[skd.FloatTensor of size 1000x1000]")
  local s = tostring(skd.zeros(10, 10, 20))
  local heads = {}
  for h in s:gmatch("%(([%d,]+)%.,%.%) =") do heads[#heads + 1] = h end
  T.eq(table.concat(heads, " "), "1, 2, 3, 8, 9, 10,")
  T.ok(s:find("\n\n...\n\n", 1, true), "a '...' line stands for the cut slices")
  -- at the threshold (1000 elements) nothing is cut
  T.ok(not tostring(skd.ones(10, 100)):find("...", 1, true), "1000 elements print in full")
end)

T.test("printing a 1M-element tensor is fast and short", function()
  local x = skd.randn(1000, 1000)
  local t0 = skd.clock()
  local s
  for _ = 1, 20 do s = tostring(x) end
  local dt = (skd.clock() - t0) / 20
  T.ok(dt < 0.01, string.format("tostring took %.4f s", dt))
  T.ok(#s < 1000, "summary is " .. #s .. " characters")
  T.ok(s:find("[skd.FloatTensor of size 1000x1000]", 1, true))
  -- the values shown are the corners
  local first = s:match("^%s*(%S+)")
  T.near(tonumber(first), x:get(1, 1), 1e-4)
end)

T.test("the footer names requires_grad and grad_fn", function()
  local a = skd.ones(2):requires_grad()
  same(a, " 1\n 1\n[skd.FloatTensor of size 2] (requires_grad)")
  local b = a * 2
  T.ok(tostring(b):find("[skd.FloatTensor of size 2] (grad_fn: ", 1, true), tostring(b))
  same(b:detach(), " 2\n 2\n[skd.FloatTensor of size 2]")
end)

T.test("print and the REPL use the same text", function()
  local x = skd.tensor({{1, 2}})
  T.eq(tostring(x), " 1  2\n[skd.FloatTensor of size 1x2]")
  T.eq(string.format("%s", x), tostring(x))
end)

T.done()
